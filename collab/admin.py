from django.contrib import admin

from collab.models import CollaborationGroup, CollaborationMember


class MemberInline(admin.TabularInline):
    model = CollaborationMember
    extra = 1


@admin.register(CollaborationGroup)
class CollaborationGroupAdmin(admin.ModelAdmin):
    list_display = ["name", "tenant", "accepts_requests"]
    list_filter = ["accepts_requests"]
    inlines = [MemberInline]
