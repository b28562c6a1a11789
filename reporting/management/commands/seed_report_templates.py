"""Load the normal-findings report templates into one tenant, per language."""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from reporting.template_seeds import do_seed_report_templates
from tenants.models import Tenant


class Command(BaseCommand):
    help = (
        "Add normal-findings report templates (chest radiograph, CT head) in "
        "the given languages, default: the tenant's; existing ones are kept."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="the tenant's schema")
        parser.add_argument(
            "--language",
            action="append",
            choices=[code for code, _name in settings.LANGUAGES],
            help="repeat for several; default: the tenant's languages",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        schema = options["tenant"]
        tenant = Tenant.objects.filter(schema_name=schema).first()
        if tenant is None or schema == "public":
            raise CommandError(f"No tenant with schema {schema!r}.")
        languages = (
            options["language"]
            or list(tenant.languages)
            or [code for code, _name in settings.LANGUAGES]
        )
        added = do_seed_report_templates(schema, languages)
        self.stdout.write(f"Added {added} report templates to {schema}.")
