from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ReadingConfig(AppConfig):
    name = "reading"
    verbose_name = _("Reading queue")

    def ready(self) -> None:
        from reading import signals  # noqa: F401  (connects the receivers)
