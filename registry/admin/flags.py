"""Flags (SPEC 3.10): shown to the admins of their org, read-only. Flags are raised and
resolved through registry.services.flags (UI and API), never edited here."""

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest

from registry.admin.base import AuditedAdmin, admin_org_ids
from registry.models import Flag


class FlagStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("open", "Open"), ("resolved", "Resolved")]

    def queryset(self, request, queryset):
        if self.value() == "open":
            return queryset.open()
        if self.value() == "resolved":
            return queryset.filter(resolved_at__isnull=False)
        return queryset


@admin.register(Flag)
class FlagAdmin(AuditedAdmin):
    org_lookup = "model__org"
    list_display = ("__str__", "severity", "summary", "status", "raised_by", "created_at")
    list_select_related = ("model__org", "version__model", "raised_by")
    list_filter = (FlagStatusFilter, "severity")
    search_fields = ("summary", "details", "model__name")
    ordering = ("-created_at", "-id")
    fields = (
        "model",
        "version",
        "severity",
        "summary",
        "details",
        "digest",
        "raised_by",
        "created_at",
        "resolved_by",
        "resolved_at",
        "resolution",
    )
    readonly_fields = fields

    @admin.display(description="status")
    def status(self, flag: Flag) -> str:
        return "open" if flag.is_open else "resolved"

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        # A flag's org is its model's (base.org_id_of knows no Flag).
        orgs = admin_org_ids(request)
        if orgs is None:
            return True
        return bool(orgs) if obj is None else obj.model.org_id in orgs

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False
