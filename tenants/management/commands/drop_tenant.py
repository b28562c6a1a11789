import getpass
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from tenants.actions import (
    TenantNotDeletable,
    do_delete_tenant,
    do_drop_orphan_schema,
)
from tenants.models import Tenant


class Command(BaseCommand):
    help = (
        "Drop a suspended tenant: its schema, host names and stored files, "
        "under the rules of the admin's delete (an intact export or backup "
        "taken after its last change; retention). Audited."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--tenant", help="Schema name.")
        which.add_argument(
            "--orphan-schema",
            help="A schema with no tenant row, left by a restore_tenant that "
            "was killed: drop it and the stored files it names.",
        )
        parser.add_argument(
            "--confirm",
            required=True,
            help="The schema name again: nothing is dropped without it.",
        )
        parser.add_argument(
            "--backup",
            help="A backup_tenant folder of the tenant, in place of an export.",
        )
        parser.add_argument(
            "--custody-handed-over",
            action="store_true",
            help="Studies within retention: the hospital (or this backup's "
            "keeper) holds the copy from now on.",
        )

    def handle(self, *args: object, **options: object) -> None:
        schema = str(options["tenant"] or options["orphan_schema"])
        if options["confirm"] != schema:
            raise CommandError("--confirm must repeat the tenant's schema name.")
        connection.set_schema_to_public()
        if options["orphan_schema"]:
            self._drop_orphan(schema)
            return
        tenant = Tenant.objects.exclude(schema_name="public").filter(schema_name=schema)
        if not tenant.exists():
            raise CommandError(f"No tenant with schema {schema!r}.")

        backup = Path(str(options["backup"])) if options["backup"] else None
        try:
            do_delete_tenant(
                tenant.get(),
                request=None,
                custody_handed_over=bool(options["custody_handed_over"]),
                backup=backup,
                actor_username=f"{getpass.getuser()} (drop_tenant)",
            )
        except TenantNotDeletable as refusal:
            raise CommandError(str(refusal)) from None
        self.stdout.write(
            f"Dropped tenant {schema}: schema, host names and stored files."
        )

    def _drop_orphan(self, schema: str) -> None:
        try:
            files = do_drop_orphan_schema(
                schema, actor_username=f"{getpass.getuser()} (drop_tenant)"
            )
        except TenantNotDeletable as refusal:
            raise CommandError(str(refusal)) from None
        self.stdout.write(f"Dropped orphan schema {schema} and {files} stored files.")
