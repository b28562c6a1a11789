import argparse

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.actions import TenantSpec, do_create_tenant, do_ensure_public_tenant


class Command(BaseCommand):
    help = "Create or update a tenant: schema, domain, AE title, RIS endpoint."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--schema", required=True)
        parser.add_argument("--name", required=True)
        parser.add_argument(
            "--domain",
            required=True,
            action="append",
            help="Host name of the tenant; repeat for aliases (the first is primary).",
        )
        parser.add_argument("--ae-title", required=True)
        parser.add_argument("--ris-host", default=None)
        parser.add_argument("--ris-port", type=int, default=None)
        parser.add_argument(
            "--ris-tls",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="Send reports over MLLP with TLS (--no-ris-tls: plain MLLP).",
        )
        parser.add_argument(
            "--ris-tls-ca",
            default=None,
            help="Path of the PEM bundle of CAs that sign the RIS's certificate.",
        )
        parser.add_argument(
            "--ris-tls-cert",
            default=None,
            help="Path of the client certificate presented to the RIS.",
        )
        parser.add_argument(
            "--ris-tls-key", default=None, help="Path of that certificate's key."
        )
        parser.add_argument(
            "--public-domain",
            default="localhost",
            help="Host of the platform admin (public schema), created if missing.",
        )

    def handle(self, *args: object, **options: object) -> None:
        do_ensure_public_tenant(str(options["public_domain"]))
        spec = TenantSpec(
            schema=str(options["schema"]),
            name=str(options["name"]),
            domains=tuple(options["domain"]),  # type: ignore[arg-type]
            ae_title=str(options["ae_title"]),
            ris_host=options["ris_host"],  # type: ignore[arg-type]
            ris_port=options["ris_port"],  # type: ignore[arg-type]
            ris_tls=options["ris_tls"],  # type: ignore[arg-type]
            ris_tls_ca_file=options["ris_tls_ca"],  # type: ignore[arg-type]
            ris_tls_cert_file=options["ris_tls_cert"],  # type: ignore[arg-type]
            ris_tls_key_file=options["ris_tls_key"],  # type: ignore[arg-type]
        )
        try:
            tenant, created = do_create_tenant(spec)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from error
        verb = "Created" if created else "Updated"
        self.stdout.write(
            f"{verb} tenant {tenant.schema_name} ({tenant.name}) "
            f"at {', '.join(spec.domains)}, "
            f"AE title {tenant.ae_title}, "
            f"RIS {tenant.ris_host or '-'}:{tenant.ris_port or '-'}"
            f"{' over TLS' if tenant.ris_tls else ''}"
        )
