"""What the admin shows is translatable: app names and fieldset titles."""

from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.utils.functional import Promise

from tenants.models import Tenant


def test_every_nimbus_app_has_a_translatable_name() -> None:
    ours = [
        config
        for config in apps.get_app_configs()
        if Path(config.path).parent == Path(settings.BASE_DIR)
    ]

    assert len(ours) > 5
    assert [c.name for c in ours if not isinstance(c.verbose_name, Promise)] == []


def test_every_fieldset_title_of_the_tenant_page_is_translatable() -> None:
    fieldsets = admin.site._registry[Tenant].fieldsets

    titles = [title for title, _options in fieldsets if title not in (None, "DICOM")]
    assert titles and all(isinstance(title, Promise) for title in titles)
