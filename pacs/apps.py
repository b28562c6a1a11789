from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PacsConfig(AppConfig):
    name = "pacs"
    verbose_name = _("PACS archive")
