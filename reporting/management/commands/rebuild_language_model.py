"""Rebuild one tenant's dictation language model from its signed reports."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from reporting.speech.tenant_model import do_rebuild_tenant_model
from tenants.models import Tenant


class Command(BaseCommand):
    help = (
        "Build the tenant's radiology language model from the base corpus and "
        "the tenant's signed reports; dictation uses it from the next connection."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="the tenant's schema")
        parser.add_argument("--language", default="en")

    def handle(self, *args: Any, **options: Any) -> None:
        schema = options["tenant"]
        if not Tenant.objects.filter(schema_name=schema).exists() or schema == "public":
            raise CommandError(f"No tenant with schema {schema!r}.")
        build = do_rebuild_tenant_model(schema, options["language"])
        self.stdout.write(
            f"Built {build.lm_path}: {build.sentences} training sentences, "
            f"{build.words} words; {len(build.skipped_lines)} lines left out "
            "for words without a pronunciation."
        )
