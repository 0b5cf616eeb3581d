"""The activity log: view-only for everyone, superusers included (SPEC 3.7)."""

from django.contrib import admin

from registry.admin.base import LogAdmin
from registry.models import ActivityEvent


@admin.register(ActivityEvent)
class ActivityEventAdmin(LogAdmin):
    list_display = ("created_at", "org", "seq", "actor_name", "verb", "target_repr")
    list_select_related = ("org",)
    list_filter = ("verb",)
    search_fields = ("verb", "target_repr", "actor_name")
    ordering = ("-created_at", "-seq")
    fields = (
        "org",
        "seq",
        "created_at",
        "actor_name",
        "verb",
        "target_type",
        "target_id",
        "target_repr",
        "model",
        "version",
        "changes",
        "data",
        "prev_hash",
        "hash",
    )
    readonly_fields = fields

    # Events are append-only: nobody adds, changes or deletes one here (LogAdmin says no
    # to change and delete), whatever their Django permissions.
    def has_add_permission(self, request) -> bool:
        return False
