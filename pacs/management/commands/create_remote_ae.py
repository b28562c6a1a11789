from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_tenants.utils import schema_context

from pacs.models import RemoteApplicationEntity
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Create or update a tenant's known remote AE (C-MOVE destination, sender)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="Schema of the tenant.")
        parser.add_argument("--ae-title", required=True)
        parser.add_argument("--host", required=True)
        parser.add_argument("--port", type=int, required=True)
        parser.add_argument("--description", default="")
        parser.add_argument("--may-store", action="store_true")
        parser.add_argument("--may-retrieve", action="store_true")
        parser.add_argument(
            "--over-internet",
            action="store_true",
            help="Accept this peer only over DICOM TLS with a client certificate.",
        )

    def handle(self, *args: object, **options: object) -> None:
        schema = str(options["tenant"])
        if (
            not Tenant.objects.filter(schema_name=schema)
            .exclude(schema_name="public")
            .exists()
        ):
            raise CommandError(f"No tenant with schema {schema!r}.")
        values = {
            "host": str(options["host"]),
            "port": options["port"],
            "description": str(options["description"]),
            "may_store": bool(options["may_store"]),
            "may_retrieve": bool(options["may_retrieve"]),
            "comes_over_internet": bool(options["over_internet"]),
        }
        with schema_context(schema):
            remote = RemoteApplicationEntity.objects.filter(
                ae_title=str(options["ae_title"])
            ).first() or RemoteApplicationEntity(ae_title=str(options["ae_title"]))
            created = remote.pk is None
            for name, value in values.items():
                setattr(remote, name, value)
            try:
                remote.full_clean()
            except ValidationError as error:
                raise CommandError("; ".join(error.messages)) from error
            remote.save()

        verb = "Created" if created else "Updated"
        self.stdout.write(
            f"{verb} remote AE {remote.ae_title} at {remote.host}:{remote.port} "
            f"for tenant {schema} (may store: {remote.may_store}, "
            f"may retrieve: {remote.may_retrieve}, "
            f"over the internet: {remote.comes_over_internet})"
        )
