from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = _("Audit trail")

    def ready(self) -> None:
        from audit import signals  # noqa: F401 - connects the admin hook
        from audit.privileges import revoke_changes_from_other_roles

        post_migrate.connect(revoke_changes_from_other_roles, sender=self)
