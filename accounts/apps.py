from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from accounts import (  # noqa: F401 - connect the audit receivers, describe auth
            schema,
            signals,
        )
