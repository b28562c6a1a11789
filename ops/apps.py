from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Operations: readiness, metrics, listener heartbeats, tenant backups."""

    name = "ops"

    def ready(self) -> None:
        from ops import metrics

        metrics.connect_worker_signals()
