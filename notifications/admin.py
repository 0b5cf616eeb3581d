"""Webhooks and the delivery log in the admin console; changes go through the services."""

from django.contrib import admin, messages

from notifications.models import Delivery, Dispatch, NotificationPreference, Webhook
from notifications.services import delivery_replay, webhook_update
from registry.admin.base import OrgScoped
from registry.errors import Forbidden, Invalid, NotFound


@admin.register(Webhook)
class WebhookAdmin(OrgScoped, admin.ModelAdmin):
    list_display = ["pk", "org", "model", "url", "active", "consecutive_failures", "disabled_at"]
    list_filter = ["active"]
    readonly_fields = [
        "org",
        "model",
        "url",
        "secret",
        "events",
        "active",
        "consecutive_failures",
        "disabled_at",
        "disabled_reason",
        "created_by",
        "created_at",
    ]
    actions = ["enable", "disable"]

    list_select_related = ["org", "model"]

    def has_add_permission(self, request):
        return False  # created from the model's Settings tab or the org page (SSRF check)

    def has_delete_permission(self, request, obj=None):
        return False

    def _set_active(self, request, queryset, active: bool):
        for webhook in queryset:
            try:
                webhook_update(actor=request.user, webhook=webhook, active=active)
            except (Forbidden, NotFound, Invalid) as exc:
                self.message_user(request, f"#{webhook.pk}: {exc}", messages.ERROR)

    @admin.action(description="Enable (and reset the failure count)")
    def enable(self, request, queryset):
        self._set_active(request, queryset, True)

    @admin.action(description="Disable")
    def disable(self, request, queryset):
        self._set_active(request, queryset, False)


@admin.register(Delivery)
class DeliveryAdmin(OrgScoped, admin.ModelAdmin):
    org_lookup = "event__org"
    list_display = [
        "pk",
        "event",
        "channel",
        "user",
        "webhook",
        "status",
        "attempts",
        "response_code",
        "latency_ms",
        "last_error",
        "next_attempt_at",
        "sent_at",
    ]
    list_filter = ["channel", "status"]
    list_select_related = ["event", "user", "webhook"]
    actions = ["replay"]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in Delivery._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Replay the selected webhook deliveries")
    def replay(self, request, queryset):
        replayed = 0
        for delivery in queryset.filter(webhook__isnull=False):
            try:
                delivery_replay(actor=request.user, delivery=delivery)
                replayed += 1
            except (Forbidden, NotFound, Invalid) as exc:
                self.message_user(request, f"#{delivery.pk}: {exc}", messages.ERROR)
        self.message_user(request, f"{replayed} deliveries queued again.")


@admin.register(Dispatch)
class DispatchAdmin(admin.ModelAdmin):
    list_display = ["event", "dispatched_at", "deliveries"]

    def get_readonly_fields(self, request, obj=None):
        return ["event", "dispatched_at", "deliveries"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_module_permission(self, request):
        return request.user.is_superuser


@admin.register(NotificationPreference)
class NotificationPreferenceAdmin(admin.ModelAdmin):
    list_display = ["user", "kind", "enabled"]
    readonly_fields = ["user", "kind", "enabled"]

    def has_add_permission(self, request):
        return False

    def has_module_permission(self, request):
        return request.user.is_superuser
