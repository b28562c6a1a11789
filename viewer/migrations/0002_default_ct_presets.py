"""Common CT windows for every tenant; hospital IT edits them in the admin."""

from django.db import migrations

# (label, center, width) in HU, in toolbar order.
CT_WINDOWS = (
    ("Brain", 40, 80),
    ("Subdural", 75, 215),
    ("Stroke", 40, 40),
    ("Lung", -600, 1500),
    ("Mediastinum", 50, 350),
    ("Abdomen", 40, 400),
    ("Liver", 60, 160),
    ("Bone", 400, 1800),
)


def add_ct_presets(apps, schema_editor):  # type: ignore[no-untyped-def]
    WindowPreset = apps.get_model("viewer", "WindowPreset")
    for position, (label, center, width) in enumerate(CT_WINDOWS):
        WindowPreset.objects.get_or_create(
            modality="CT",
            label=label,
            defaults={
                "window_center": center,
                "window_width": width,
                "position": position,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("viewer", "0001_annotations_key_images_presets")]

    operations = [migrations.RunPython(add_ct_presets, migrations.RunPython.noop)]
