from django.contrib import admin

from pacs.models import RemoteApplicationEntity


@admin.register(RemoteApplicationEntity)
class RemoteApplicationEntityAdmin(admin.ModelAdmin):
    list_display = ("ae_title", "host", "port", "may_store", "may_retrieve")
    list_filter = ("may_store", "may_retrieve")
    search_fields = ("ae_title", "host", "description")
