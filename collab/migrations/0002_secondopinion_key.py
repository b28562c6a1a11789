import uuid

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("collab", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="secondopinion",
            name="key",
            field=models.UUIDField(null=True, editable=False),
        ),
        # One random key per existing share (a default would give them all one).
        migrations.RunSQL(
            "UPDATE collab_secondopinion SET key = gen_random_uuid()",
            migrations.RunSQL.noop,
        ),
        migrations.AlterField(
            model_name="secondopinion",
            name="key",
            field=models.UUIDField(default=uuid.uuid4, unique=True, editable=False),
        ),
    ]
