from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OpsConfig(AppConfig):
    """Operations: readiness, metrics, listener heartbeats, tenant backups."""

    name = "ops"
    verbose_name = _("Operations")

    def ready(self) -> None:
        from ops import metrics

        metrics.connect_worker_signals()
