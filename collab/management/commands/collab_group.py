from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_tenants.utils import tenant_context

from accounts.management.commands._tenant import get_tenant
from accounts.models import User
from collab.actions import do_offer_group


class Command(BaseCommand):
    help = (
        "Create or update a reading group that answers second opinions from other "
        "tenants, and add radiologists of the tenant to it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--tenant", required=True, help="Schema name of the tenant."
        )
        parser.add_argument("--name", required=True, help="Name of the group.")
        parser.add_argument(
            "--member", action="append", default=[], help="User name of a radiologist."
        )

    def handle(self, *args: object, **options: object) -> None:
        tenant = get_tenant(str(options["tenant"]))
        names = [str(n) for n in options["member"]]  # type: ignore[attr-defined]
        with tenant_context(tenant):
            users = list(User.objects.filter(username__in=names))
        missing = sorted(set(names) - {u.username for u in users})
        if missing:
            raise CommandError(
                f"No such user in {tenant.schema_name}: {', '.join(missing)}"
            )
        not_readers = sorted(u.username for u in users if not u.reads_studies)
        if not_readers:
            raise CommandError(f"Not radiologists: {', '.join(not_readers)}")

        group = do_offer_group(tenant, str(options["name"]), users)
        self.stdout.write(
            f"Group {group.name} of tenant {tenant.schema_name}: "
            f"{group.members.count()} member(s)"
        )
