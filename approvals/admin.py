"""Stage change requests and reviews (view-only: they change only through the approval
services), and aliases (changed here through the alias services), scoped like the rest of
the console to the orgs whose admin the user is (registry.admin.base)."""

from django.contrib import admin
from django.db.models import Model

from approvals.models import Review, StageChangeRequest
from registry.admin.base import AuditedAdmin, admin_org_ids, adopt
from registry.models import Alias, ModelVersion, RegisteredModel
from registry.services.aliases import alias_protect, alias_remove, alias_set


def _org_id(obj: Model) -> int:
    if isinstance(obj, Review):
        return obj.request.model.org_id
    return obj.model.org_id


class ModelScoped:
    """Rows reached through a registered model: open to the admins of the model's org."""

    def _allowed(self, request, obj: Model | None) -> bool:
        orgs = admin_org_ids(request)
        if orgs is None:
            return True
        return bool(orgs) if obj is None else _org_id(obj) in orgs

    def has_module_permission(self, request) -> bool:
        return self._allowed(request, None)

    def has_view_permission(self, request, obj: Model | None = None) -> bool:
        return self._allowed(request, obj)


class ViewOnly(ModelScoped):
    """Shown, never changed here, whoever asks (superusers too)."""

    def has_add_permission(self, request, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request, obj: Model | None = None) -> bool:
        return False


class ReviewInline(ViewOnly, admin.TabularInline):
    model = Review
    fields = ("reviewer", "decision", "comment", "created_at")
    readonly_fields = fields
    extra = 0

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("reviewer")


@admin.register(StageChangeRequest)
class StageChangeRequestAdmin(ViewOnly, AuditedAdmin):
    org_lookup = "model__org"
    list_display = ("__str__", "kind", "status", "requester", "skips", "moves_back", "created_at")
    list_select_related = ("model__org", "version", "requester")
    list_filter = ("status", "kind", "to_stage")
    search_fields = ("model__name", "alias_name", "comment", "requester__username")
    fields = (
        "kind",
        "model",
        "version",
        "from_stage",
        "to_stage",
        "archive_existing",
        "skips",
        "moves_back",
        "alias_name",
        "alias_from",
        "comment",
        "requester",
        "status",
        "required_approvals",
        "created_at",
        "decided_at",
    )
    readonly_fields = fields
    inlines = [ReviewInline]


@admin.register(Review)
class ReviewAdmin(ViewOnly, AuditedAdmin):
    org_lookup = "request__model__org"
    list_display = ("request", "reviewer", "decision", "created_at")
    list_select_related = ("request__model__org", "request__version", "reviewer")
    list_filter = ("decision",)
    fields = ("request", "reviewer", "decision", "comment", "created_at")
    readonly_fields = fields


@admin.register(Alias)
class AliasAdmin(ModelScoped, AuditedAdmin):
    """Set, move, protect and remove aliases through the alias services (as an org admin,
    who may move protected ones); a refusal is a message and nothing changes."""

    org_lookup = "model__org"
    list_display = ("__str__", "version", "protected", "updated_at")
    list_select_related = ("model__org", "version__model")
    list_filter = ("protected",)
    search_fields = ("model__name", "name")
    fields = ("model", "name", "version", "protected", "created_by", "created_at")
    readonly_fields = ("created_by", "created_at")

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return self.readonly_fields
        return ("model", "name", *self.readonly_fields)  # the alias's identity stays

    def has_change_permission(self, request, obj: Model | None = None) -> bool:
        return self._allowed(request, obj)

    def has_delete_permission(self, request, obj: Model | None = None) -> bool:
        return self._allowed(request, obj)

    def has_add_permission(self, request) -> bool:
        return self._allowed(request, None)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        orgs = admin_org_ids(request)
        if "model" in form.base_fields:
            models = RegisteredModel.objects.select_related("org")
            if orgs is not None:
                models = models.filter(org__in=orgs)
            form.base_fields["model"].queryset = models
        # Any version of the user's orgs: pointing at another model's is the service's to
        # refuse, with its reason.
        versions = ModelVersion.objects.select_related("model")
        if obj is not None:
            versions = versions.filter(model=obj.model_id)
        elif orgs is not None:
            versions = versions.filter(model__org__in=orgs)
        form.base_fields["version"].queryset = versions.order_by("model__name", "-number")
        return form

    def save_model(self, request, obj, form, change):
        model = RegisteredModel.objects.select_related("org").get(pk=obj.model_id)
        actor = request.user
        if not change or "version" in form.changed_data:
            alias_set(actor=actor, model=model, name=obj.name, version=obj.version)
        if "protected" in form.changed_data:
            alias_protect(actor=actor, model=model, name=obj.name, protected=obj.protected)
        adopt(obj, Alias.objects.get(model=model, name=obj.name))

    def delete_model(self, request, obj):
        alias_remove(actor=request.user, model=obj.model, name=obj.name)

    def delete_queryset(self, request, queryset):
        for alias in queryset.select_related("model__org"):
            alias_remove(actor=request.user, model=alias.model, name=alias.name)
