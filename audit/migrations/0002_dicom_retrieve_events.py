from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("audit", "0001_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name="auditevent",
            name="event_type",
            field=models.PositiveIntegerField(
                choices=[(100, 'Sign-in succeeded'), (101, 'Sign-in failed'), (102, 'Signed out'), (110, 'Access denied'), (120, 'API token issued'), (200, 'Worklist searched'), (201, 'Study opened'), (202, 'Frames viewed'), (210, 'Report read'), (220, 'DICOMweb query'), (221, 'DICOMweb retrieve'), (230, 'DICOM C-MOVE retrieve'), (231, 'DICOM C-GET retrieve'), (300, 'Instance stored'), (310, 'Report edited'), (311, 'Dictation added to report'), (312, 'Report signed'), (400, 'Report delivered to RIS'), (401, 'Report delivery to RIS failed'), (500, 'Tenant configuration changed'), (501, 'User changed')],
                db_index=True,
            ),
        ),
    ]
