from django.contrib import admin

from viewer.models import WindowPreset


@admin.register(WindowPreset)
class WindowPresetAdmin(admin.ModelAdmin):
    list_display = ("modality", "position", "label", "window_center", "window_width")
    list_display_links = ("label",)
    list_editable = ("position", "window_center", "window_width")
    list_filter = ("modality",)
    ordering = ("modality", "position")
