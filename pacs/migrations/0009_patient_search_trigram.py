from django.contrib.postgres.indexes import GinIndex, OpClass
from django.db import migrations
from django.db.models.functions import Upper

# pg_trgm is a trusted extension (PostgreSQL 13+): the database's owner may
# create it. It goes to public, once per database, where every tenant's
# search_path finds its operator classes.
CREATE_TRGM = "CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public"


class Migration(migrations.Migration):
    dependencies = [("pacs", "0008_study_newest_first_index")]

    operations = [
        migrations.RunSQL(CREATE_TRGM, migrations.RunSQL.noop),
        migrations.AddIndex(
            model_name="patient",
            index=GinIndex(
                OpClass(Upper("patient_id"), name="gin_trgm_ops"),
                name="pacs_patient_id_search",
            ),
        ),
        migrations.AddIndex(
            model_name="patient",
            index=GinIndex(
                OpClass(Upper("patient_name"), name="gin_trgm_ops"),
                name="pacs_patient_name_search",
            ),
        ),
    ]
