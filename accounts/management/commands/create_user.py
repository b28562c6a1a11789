import secrets

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_tenants.utils import tenant_context

from accounts.actions import do_create_user, new_totp_secret, totp_secret_to_hex
from accounts.management.commands._tenant import get_tenant
from accounts.models import Role, User


class Command(BaseCommand):
    help = "Create or update a tenant user with a password and a TOTP secret."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--tenant", required=True, help="Schema name of the tenant."
        )
        parser.add_argument("--username", required=True)
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument("--password", help="Generated and printed if omitted.")
        parser.add_argument(
            "--totp-secret", help="Base32 TOTP secret; generated if omitted."
        )

    def handle(self, *args: object, **options: str | None) -> None:
        tenant = get_tenant(str(options["tenant"]))
        password = options["password"] or secrets.token_urlsafe(12)
        totp_secret = options["totp_secret"] or new_totp_secret()
        try:
            totp_secret_to_hex(totp_secret)
        except ValueError as error:
            raise CommandError(str(error)) from error

        with tenant_context(tenant):
            try:
                # With the user, so that a password like the name is refused too.
                validate_password(password, User(username=options["username"]))
            except ValidationError as error:
                raise CommandError(" ".join(error.messages)) from error
            user, created = do_create_user(
                str(options["username"]), Role(options["role"]), password, totp_secret
            )

        verb = "Created" if created else "Updated"
        self.stdout.write(
            f"{verb} user {user.username} ({user.role}) in tenant {tenant.schema_name}"
        )
        self.stdout.write(f"password: {password}")
        self.stdout.write(f"TOTP secret: {totp_secret}")
