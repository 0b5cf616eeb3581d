"""Model versions with their artifacts, under the lock rules of SPEC 3.2, and blobs."""

from typing import Any

from django.contrib import admin
from django.core.exceptions import ValidationError

from registry.admin.base import (
    AuditedAdmin,
    LogAdmin,
    ScopedInline,
    admin_org_ids,
    formset_changes,
    may_administer,
)
from registry.errors import Invalid, RegistryError
from registry.models import (
    FREE_METADATA_FIELDS,
    INGREDIENT_FIELDS,
    Artifact,
    Blob,
    LockLevel,
    ModelVersion,
)
from registry.permissions import model_access
from registry.services.artifacts import artifact_delete
from registry.services.versions import (
    require_unlocked,
    version_delete,
    version_set_lock_level,
    version_update,
)

EDITABLE = (*FREE_METADATA_FIELDS, *INGREDIENT_FIELDS)


class ArtifactInline(ScopedInline):
    """Listed read-only; a checkbox removes one (uploads go through the API or client)."""

    model = Artifact
    fields = ("path", "size", "sha256", "created_by", "created_at")
    readonly_fields = fields
    extra = 0

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("blob", "created_by")

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        # No checkbox on a closed version: nobody may remove its artifacts.
        closed = obj is not None and obj.is_closed
        return super().has_delete_permission(request, obj) and not closed


@admin.register(ModelVersion)
class ModelVersionAdmin(AuditedAdmin):
    org_lookup = "model__org"
    list_display = ("__str__", "label", "stage", "lock_level", "branch", "created_at")
    list_filter = ("lock_level", "stage")
    search_fields = ("model__name", "label", "digest")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "id",
                    "model",
                    "number",
                    "branch",
                    "label",
                    "stage",
                    "lock_level",
                    "digest",
                    "created_by",
                    "created_at",
                    "updated_at",
                )
            },
        ),
        (
            "Free metadata (editable at every lock level)",
            {"fields": ("description", "readme", "tags")},
        ),
        (
            "Ingredients (frozen once closed)",
            {"fields": (*INGREDIENT_FIELDS, "parents_list")},
        ),
    )
    # Identity and the recorded facts never change here; the stage moves through approvals.
    readonly_fields = (
        "id",
        "model",
        "number",
        "branch",
        "stage",
        "digest",
        "created_by",
        "created_at",
        "updated_at",
        "parents_list",
    )
    inlines = [ArtifactInline]

    def get_queryset(self, request):
        # The list shows each version's and branch's model: one query for all the rows.
        related = ("model__org", "branch__model", "created_by")
        return super().get_queryset(request).select_related(*related)

    @admin.display(description="parents")
    def parents_list(self, version: ModelVersion) -> str:
        parents = version.parents.select_related("model").order_by("model__name", "number")
        return ", ".join(str(parent) for parent in parents) or "-"

    def formfield_for_choice_field(self, db_field, request, **kwargs):
        if db_field.name == "lock_level":
            kwargs["choices"] = LockLevel.choices  # every version has one: no blank choice
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        fields = list(self.readonly_fields)
        if obj is None:
            return fields
        if obj.label:
            fields.append("label")  # immutable once set
        if obj.is_closed:
            fields.extend(INGREDIENT_FIELDS)
            if obj.model.org.closed_is_final:
                fields.append("lock_level")  # nothing above closed, no way below it
        return fields

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.is_closed:
            context["show_delete"] = False  # a closed version is never deleted
        return super().render_change_form(request, context, add, change, form_url, obj)

    def save_model(self, request, obj, form, change):
        """Nothing yet: save_related applies the whole submission, in order."""

    def save_related(self, request, form, formsets, change):
        """Apply a submission in the order that lets one form do what it says: a lowered
        level first (it may unlock the edits), then the edits and artifact removals, a
        raised level last (a form may edit, then close)."""
        version = ModelVersion.objects.select_related("model__org").get(pk=form.instance.pk)
        edits, level = self._requested(request, form, version)
        lowering = level is not None and LockLevel.rank(level) < LockLevel.rank(version.lock_level)
        if lowering:
            version = version_set_lock_level(actor=request.user, version=version, level=level)
        if edits:
            version = version_update(actor=request.user, version=version, **edits)
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)
        if level is not None and not lowering:
            version_set_lock_level(actor=request.user, version=version, level=level)

    def _requested(self, request, form, version: ModelVersion) -> tuple[dict[str, Any], str | None]:
        """The edits and the lock level a submission asks for.

        Values posted for fields shown read-only because of the lock (a form rendered before
        the version closed, or a forged one) are asked for too when they differ: the service
        refuses them with its reason, rather than the edit vanishing without a word.
        """
        edits = {name: form.cleaned_data[name] for name in form.changed_data if name in EDITABLE}
        level = form.cleaned_data["lock_level"] if "lock_level" in form.changed_data else None
        frozen = set(self.get_readonly_fields(request, version)) & {*EDITABLE, "lock_level"}
        for name in sorted(frozen - {"label"}):
            if name not in request.POST:
                continue
            try:
                value = ModelVersion._meta.get_field(name).formfield().clean(request.POST[name])
            except ValidationError as error:
                raise Invalid(f"{name}: {' '.join(error.messages)}") from None
            if value == getattr(version, name):
                continue
            if name == "lock_level":
                level = value
            else:
                edits[name] = value
        return edits, level

    def save_formset(self, request, form, formset, change):
        _added, _changed, deleted = formset_changes(formset)
        for row in deleted:
            artifact_delete(actor=request.user, version=form.instance, path=row.instance.path)

    def delete_view(self, request, object_id, extra_context=None):
        version = self.get_object_or_404(request, object_id)
        if request.method == "GET":
            # Say at once why a locked version cannot go, rather than after confirming.
            try:
                access = model_access(request.user, version.model)
                require_unlocked(version, access, "delete it")
            except RegistryError as error:
                return self.refuse(request, error, self.change_url(version))
        return super().delete_view(request, object_id, extra_context)

    def delete_model(self, request, obj):
        version_delete(actor=request.user, version=obj)

    def delete_queryset(self, request, queryset):
        # Newest first: a child goes before the parent it descends from.
        for version in queryset.order_by("-created_at"):
            version_delete(actor=request.user, version=version)


@admin.register(Blob)
class BlobAdmin(LogAdmin):
    """Content-addressed bytes, shared by artifacts: an org admin sees those their orgs'
    artifacts point at. Blobs go when nothing points at them, never by hand."""

    org_lookup = "artifacts__version__model__org"
    list_display = ("sha256", "size", "created_at")
    search_fields = ("sha256",)
    fields = ("sha256", "size", "created_at")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).distinct()

    def has_view_permission(self, request, obj=None) -> bool:
        if obj is None or admin_org_ids(request) is None:
            return may_administer(request)
        return self.get_queryset(request).filter(pk=obj.pk).exists()
