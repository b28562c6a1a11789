from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("reporting", "0005_outbound_next_attempt_at"),
    ]

    operations = [
        migrations.AlterField(
            model_name="outboundmessage",
            name="state",
            field=models.CharField(
                choices=[
                    ("pending", "Waiting to be sent"),
                    ("retrying", "RIS unreachable, retrying"),
                    ("delivered", "Delivered"),
                    ("rejected", "Refused by the RIS"),
                    ("no_ris", "No RIS configured"),
                    ("held", "Held after a restore: resend by hand"),
                ],
                default="pending",
                max_length=16,
            ),
        ),
    ]
