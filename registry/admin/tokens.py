"""API tokens: superusers see them all, and may revoke one (for a leaked token). Nobody sees
a token's hash or makes one here: users make their own on their profile page, org admins
those of their service accounts in the org's settings, and the plaintext is shown once."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from registry.models import ApiToken
from registry.services.tokens import token_revoke


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = (
        "prefix",
        "name",
        "user",
        "org",
        "scope",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    )
    list_select_related = ("user", "org")
    list_filter = ("scope", "revoked_at")
    search_fields = ("prefix", "name", "user__username")
    fields = (
        "prefix",
        "name",
        "user",
        "org",
        "scope",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    )
    readonly_fields = fields
    actions = ["revoke"]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return self.has_module_permission(request)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet) -> None:
        for token in queryset:
            token_revoke(actor=request.user, token=token)
        messages.success(request, f"Revoked {queryset.count()} token(s).")
