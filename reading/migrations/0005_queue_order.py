from django.db import migrations, models

# The worklist now joins each study to its queue row (an inner join, so that
# a page can walk the queue's index): a study without one would drop off the
# worklist. Ingest and orders make the row with the study; this is for any
# study written around them (a bulk load, a partial restore). Like 0002, such
# a study joins the queue as routine, due after the tenant's routine
# turnaround, and is not routed again.
QUEUE_MISSING = """
INSERT INTO reading_studyreading
    (study_id, priority, priority_source, due_at, due_at_manual, routed_with_images)
SELECT s.id, 'routine', 'default',
    s.received_at + make_interval(mins => coalesce(
        (SELECT routine_minutes FROM reading_readingsettings WHERE id = 1), 2880)),
    false, true
FROM pacs_study s
WHERE NOT EXISTS (SELECT 1 FROM reading_studyreading r WHERE r.study_id = s.id)
ON CONFLICT (study_id) DO NOTHING
"""


class Migration(migrations.Migration):
    dependencies = [("reading", "0004_claim_ending_signed")]

    operations = [
        migrations.RunSQL(QUEUE_MISSING, migrations.RunSQL.noop),
        migrations.AddField(
            model_name="studyreading",
            name="priority_rank",
            field=models.GeneratedField(
                db_persist=True,
                expression=models.Case(
                    models.When(priority="stat", then=models.Value(0)),
                    models.When(priority="urgent", then=models.Value(1)),
                    models.When(priority="routine", then=models.Value(2)),
                    default=models.Value(2),
                ),
                output_field=models.SmallIntegerField(),
            ),
        ),
        migrations.AddIndex(
            model_name="studyreading",
            index=models.Index(
                fields=["priority_rank", "due_at"], name="reading_queue_order"
            ),
        ),
        migrations.AddIndex(
            model_name="studyreading",
            index=models.Index(
                models.OrderBy(
                    models.F("priority_rank"), descending=True, nulls_last=True
                ),
                models.OrderBy(models.F("due_at"), descending=True, nulls_last=True),
                name="reading_queue_order_reverse",
            ),
        ),
    ]
