from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ops.backup import BackupError, do_restore_tenant


class Command(BaseCommand):
    help = (
        "Restore one tenant from a backup_tenant folder, into this deployment "
        "(the tenant must not exist here); checksums are verified first."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--input", required=True, help="The backup folder.")

    def handle(self, *args: object, **options: str) -> None:
        try:
            summary = do_restore_tenant(Path(options["input"]))
        except BackupError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            f"Restored tenant {summary.schema} from {summary.folder}: "
            f"{summary.files} stored files, counts {summary.counts}"
        )
        if summary.held:
            self.stdout.write(
                f"{summary.held} HL7 messages not yet delivered when the backup "
                "was taken are held: check the RIS, then resend each from the "
                "outbound queue page (/reports/outbound/?state=held)."
            )
