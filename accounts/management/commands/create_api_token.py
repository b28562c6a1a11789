from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_tenants.utils import tenant_context

from accounts.actions import do_issue_api_token
from accounts.management.commands._tenant import get_tenant
from accounts.models import User


class Command(BaseCommand):
    help = (
        "Issue a bearer token for a tenant's user; prints it alone on the last line. "
        "Only a hash is stored, so every call issues a new token."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True)
        parser.add_argument("--username", required=True)
        parser.add_argument("--label", default="")

    def handle(self, *args: object, **options: str) -> None:
        tenant = get_tenant(options["tenant"])
        with tenant_context(tenant):
            user = User.objects.filter(
                username=options["username"], is_active=True
            ).first()
            if user is None:
                raise CommandError(
                    f"No active user {options['username']!r} in {tenant.schema_name}."
                )
            raw = do_issue_api_token(user, label=options["label"])
        self.stdout.write(
            f"Issued an API token for {user.username} in tenant {tenant.schema_name}:"
        )
        self.stdout.write(raw)
