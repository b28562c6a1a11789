from django.db import migrations

# Studies indexed before the queue existed join it as routine, due 48 hours
# (the default routine turnaround) after they were received.
QUEUE_EXISTING = """
INSERT INTO reading_studyreading
    (study_id, priority, priority_source, due_at, due_at_manual, routed_with_images)
SELECT id, 'routine', 'default', received_at + interval '48 hours', false, true
FROM pacs_study
ON CONFLICT (study_id) DO NOTHING
"""


class Migration(migrations.Migration):
    dependencies = [("reading", "0001_queue")]

    operations = [migrations.RunSQL(QUEUE_EXISTING, migrations.RunSQL.noop)]
