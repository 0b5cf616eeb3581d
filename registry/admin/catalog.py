"""Registered models with their permission grants (SPEC 3.1), and comments (read-only)."""

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db.models import Q

from registry.admin.base import (
    AuditedAdmin,
    ScopedInline,
    admin_orgs,
    adopt,
    changed_values,
    formset_changes,
    may_administer,
    stored,
)
from registry.models import (
    Comment,
    ModelGroupPermission,
    ModelPermission,
    ModelUserPermission,
    RegisteredModel,
)
from registry.services.registered_models import (
    EDITABLE,
    model_create,
    model_delete,
    model_grant,
    model_revoke,
    model_update,
)

User = get_user_model()


def _model_permissions():
    return Permission.objects.filter(
        content_type=ContentType.objects.get_for_model(RegisteredModel),
        codename__in=ModelPermission.values,
    )


def _word(permission: Permission) -> str:
    return ModelPermission(permission.codename).label


class GrantForm(forms.ModelForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            # A grant is a fact: revoke it (delete) and grant another rather than edit it.
            for field in self.fields.values():
                field.disabled = True


class GrantInline(ScopedInline):
    form = GrantForm
    fk_name = "content_object"
    grantee = ""  # "user" or "group"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("permission", self.grantee)

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        fields = formset.form.base_fields  # new fields for each call: safe to narrow
        fields["permission"].queryset = _model_permissions()
        fields["permission"].label_from_instance = _word
        fields[self.grantee].queryset = self.grantees(obj)
        return formset


class UserGrantInline(GrantInline):
    model = ModelUserPermission
    grantee = "user"
    fields = ("user", "permission")
    verbose_name = "permission granted to a user"
    verbose_name_plural = "permissions granted to users"

    def grantees(self, model: RegisteredModel | None):
        if model is None:
            return User.objects.none()
        # Members, and whoever already holds a grant (a former member's shows until revoked).
        return (
            User.objects.filter(
                Q(memberships__org=model.org_id) | Q(modeluserpermission__content_object=model)
            )
            .distinct()
            .order_by("username")
        )


class TeamGrantInline(GrantInline):
    model = ModelGroupPermission
    grantee = "group"
    fields = ("group", "permission")
    verbose_name = "permission granted to a team"
    verbose_name_plural = "permissions granted to teams"

    def grantees(self, model: RegisteredModel | None):
        if model is None:
            return Group.objects.none()
        return Group.objects.filter(team__org=model.org_id).order_by("name")


def _grantee(grant) -> dict:
    if isinstance(grant, ModelUserPermission):
        return {"user": grant.user}
    return {"team": grant.group.team}


@admin.register(RegisteredModel)
class RegisteredModelAdmin(AuditedAdmin):
    list_display = ("name", "org", "visibility", "owner", "updated_at")
    list_select_related = ("org", "owner")
    list_filter = ("visibility",)
    search_fields = ("name", "description")
    fields = (
        "org",
        "name",
        "description",
        "readme",
        "visibility",
        "required_approvals",
        "tags",
        "owner",
        "created_by",
        "created_at",
        "updated_at",
    )
    inlines = [UserGrantInline, TeamGrantInline]

    def get_readonly_fields(self, request, obj=None):
        recorded = ("created_by", "created_at", "updated_at")
        return recorded if obj is None else ("org", *recorded)

    def has_add_permission(self, request) -> bool:
        return may_administer(request)

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        fields = form.base_fields  # new fields for each call: safe to narrow
        if obj is None:
            orgs = admin_orgs(request)
            fields["org"].queryset = orgs
            owners = User.objects.filter(memberships__org__in=orgs)
            fields["owner"].help_text = "You, if left empty."
        else:
            owners = User.objects.filter(Q(memberships__org=obj.org_id) | Q(pk=obj.owner_id))
        fields["owner"].queryset = owners.distinct().order_by("username")
        return form

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            changes = changed_values(form, EDITABLE)
            if changes:
                model_update(actor=request.user, model=stored(obj), **changes)
            return
        model = model_create(
            actor=request.user,
            org=data["org"],
            name=data["name"],
            description=data["description"],
            readme=data["readme"],
            visibility=data["visibility"],
            tags=data["tags"],
            required_approvals=data["required_approvals"],
        )
        if data["owner"] is not None and data["owner"] != request.user:
            model = model_update(actor=request.user, model=model, owner=data["owner"])
        adopt(obj, model)

    def save_formset(self, request, form, formset, change):
        model = stored(form.instance)
        added, _changed, deleted = formset_changes(formset)  # grants are never edited
        for row in deleted:
            grant = row.instance
            model_revoke(
                actor=request.user,
                model=model,
                permission=_word(grant.permission),
                **_grantee(grant),
            )
        for row in added:
            grant = row.instance
            model_grant(
                actor=request.user,
                model=model,
                permission=_word(grant.permission),
                **_grantee(grant),
            )

    def delete_model(self, request, obj):
        model_delete(actor=request.user, model=obj)

    def delete_queryset(self, request, queryset):
        for model in queryset.select_related("org"):
            model_delete(actor=request.user, model=model)


@admin.register(Comment)
class CommentAdmin(AuditedAdmin):
    """Comments are the discussion's record: shown, never edited here."""

    org_lookup = "model__org"
    list_display = ("__str__", "version", "created_at")
    list_select_related = ("model__org", "version__model", "author")
    search_fields = ("body", "model__name")
    fields = ("model", "version", "author", "body", "created_at")
    readonly_fields = fields

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
