from django.db import migrations, models


def record_what_was_issued(apps, schema_editor):
    """Fill the issued text of reports issued before it was kept.

    Issuing a preliminary report saves a version with the preliminary status
    and, until now, could happen once: the first such version is what was
    issued; later ones are unsigned edits. A signed report's text never
    changes after signing.
    """
    Report = apps.get_model("reporting", "Report")
    ReportVersion = apps.get_model("reporting", "ReportVersion")
    issued = Report.objects.filter(status__in=["preliminary", "signed"])
    for report in issued.iterator():
        wanted = "signed" if report.status == "signed" else "preliminary"
        version = (
            ReportVersion.objects.filter(report=report, kind="report", status=wanted)
            .order_by("version")
            .first()
        )
        if report.status == "signed" or version is None:
            report.issued_text = report.text
            report.issued_version = version.version if version else report.version
        else:
            report.issued_text = version.text
            report.issued_version = version.version
        report.save(update_fields=["issued_text", "issued_version"])


class Migration(migrations.Migration):
    dependencies = [
        ("reporting", "0006_outbound_held_state"),
    ]

    operations = [
        migrations.AddField(
            model_name="report",
            name="issued_text",
            field=models.TextField(blank=True),
        ),
        migrations.AddField(
            model_name="report",
            name="issued_version",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.RunPython(record_what_was_issued, migrations.RunPython.noop),
    ]
