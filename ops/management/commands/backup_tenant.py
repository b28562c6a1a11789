from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ops.backup import BackupError, do_backup_tenant


class Command(BaseCommand):
    help = (
        "Back up one tenant: its schema (pg_dump), its stored files and its "
        "audit anchor, with a manifest of checksums (docs/operations.md)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="Schema name.")
        parser.add_argument(
            "--output", required=True, help="A new folder for the backup."
        )

    def handle(self, *args: object, **options: str) -> None:
        try:
            summary = do_backup_tenant(options["tenant"], Path(options["output"]))
        except (BackupError, FileExistsError) as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            f"Backed up tenant {summary.schema} into {summary.folder}: "
            f"{summary.files} stored files, counts {summary.counts}"
        )
