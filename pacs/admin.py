from django.contrib import admin

from pacs.models import RemoteApplicationEntity


@admin.register(RemoteApplicationEntity)
class RemoteApplicationEntityAdmin(admin.ModelAdmin):
    list_display = (
        "ae_title",
        "host",
        "port",
        "may_store",
        "may_retrieve",
        "comes_over_internet",
    )
    list_filter = ("may_store", "may_retrieve", "comes_over_internet")
    search_fields = ("ae_title", "host", "description")
