import datetime

from django.db import migrations, models

# A due time out of reach (a typed 0001-01-01 became 1 BC after the zone
# offset) cannot be read by psycopg and broke the tenant's worklists: such
# a row gets the due time its priority derives from its arrival again.
REPAIR = """
UPDATE reading_studyreading AS r
SET due_at_manual = false,
    due_at = s.received_at + make_interval(mins => CASE r.priority
        WHEN 'stat' THEN COALESCE((SELECT stat_minutes FROM reading_readingsettings
                                   ORDER BY id LIMIT 1), 60)
        WHEN 'urgent' THEN COALESCE((SELECT urgent_minutes FROM reading_readingsettings
                                     ORDER BY id LIMIT 1), 240)
        ELSE COALESCE((SELECT routine_minutes FROM reading_readingsettings
                       ORDER BY id LIMIT 1), 2880)
    END)
FROM pacs_study AS s
WHERE s.id = r.study_id
  AND (r.due_at < '1900-01-01T00:00:00Z' OR r.due_at >= '9000-01-01T00:00:00Z')
"""


class Migration(migrations.Migration):
    dependencies = [("reading", "0002_queue_existing_studies")]

    operations = [
        migrations.RunSQL(REPAIR, migrations.RunSQL.noop),
        migrations.AddConstraint(
            model_name="studyreading",
            constraint=models.CheckConstraint(
                condition=models.Q(due_at__isnull=True)
                | models.Q(
                    due_at__gte=datetime.datetime(1900, 1, 1, tzinfo=datetime.UTC),
                    due_at__lt=datetime.datetime(9000, 1, 1, tzinfo=datetime.UTC),
                ),
                name="reading_due_at_in_reach",
            ),
        ),
    ]
