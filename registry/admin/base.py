"""What every registry admin shares: org scoping, role-based permissions, and refusals shown
as messages. No class here writes a domain row: subclasses call services."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.db import router, transaction
from django.db.models import Model, QuerySet
from django.forms.formsets import DELETION_FIELD_NAME
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from simple_history.admin import SimpleHistoryAdmin

from registry.errors import RegistryError
from registry.models import Artifact, Comment, Membership, ModelVersion, Organization, Role


def admin_org_ids(request: HttpRequest) -> set[int] | None:
    """Ids of the orgs the request's user administers here; None means every org."""
    user = request.user
    if not (user.is_active and user.is_staff):
        return set()
    if user.is_superuser:
        return None
    if not hasattr(request, "_registry_admin_orgs"):
        request._registry_admin_orgs = set(
            Membership.objects.filter(user=user, role=Role.ADMIN).values_list("org_id", flat=True)
        )
    return request._registry_admin_orgs


def admin_orgs(request: HttpRequest) -> QuerySet:
    orgs = admin_org_ids(request)
    queryset = Organization.objects.all()
    return queryset if orgs is None else queryset.filter(pk__in=orgs)


def org_id_of(obj: Model) -> int:
    if isinstance(obj, Organization):
        return obj.pk
    if isinstance(obj, (ModelVersion, Comment)):
        return obj.model.org_id
    if isinstance(obj, Artifact):
        return obj.version.model.org_id
    return obj.org_id


def may_administer(request: HttpRequest, obj: Model | None = None) -> bool:
    """Whether the user may use the console at all (obj None), or for obj's org."""
    orgs = admin_org_ids(request)
    if orgs is None:
        return True
    return bool(orgs) if obj is None else org_id_of(obj) in orgs


def stored(obj: Model) -> Model:
    """The row as stored: a form's instance already holds the submitted values, and a
    service must judge the request against what is, not what is asked for."""
    return type(obj)._base_manager.get(pk=obj.pk)


def adopt(obj: Model, created: Model) -> None:
    """Make the admin's unsaved form instance stand for the row a service created, so that
    the admin's log entry, inlines and redirect point at it (they read its fields and key)."""
    for field in obj._meta.concrete_fields:
        setattr(obj, field.attname, getattr(created, field.attname))


def _delete_requested(form: forms.BaseForm) -> bool:
    # From the POST, not cleaned_data: where no checkbox is offered (a closed version's
    # artifacts), a stale or forged request still reaches the service, which says why not.
    return forms.CheckboxInput().value_from_datadict(
        form.data, form.files, form.add_prefix(DELETION_FIELD_NAME)
    )


def formset_changes(formset) -> tuple[list, list, list]:
    """The forms of a bound inline formset that add, change and delete rows, saving none:
    the caller hands each to a service. Sets what the admin's change message reads."""
    deleted = [form for form in formset.initial_forms if _delete_requested(form)]
    changed = [form for form in formset.initial_forms if form not in deleted and form.has_changed()]
    added = [
        form for form in formset.extra_forms if form.has_changed() and not _delete_requested(form)
    ]
    formset.new_objects = [form.instance for form in added]
    formset.changed_objects = [(form.instance, form.changed_data) for form in changed]
    formset.deleted_objects = [form.instance for form in deleted]
    return added, changed, deleted


class OrgScoped:
    """Scopes a ModelAdmin to the orgs its user administers, grants it by the org-admin
    role rather than Django model permissions, and turns a service's refusal into a message.

    Objects of other orgs are absent: their pages answer 404 (SPEC 3.1).
    """

    org_lookup = "org"  # the path from a row to its organization

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset = super().get_queryset(request)
        orgs = admin_org_ids(request)
        if orgs is None:
            return queryset
        return queryset.filter(**{f"{self.org_lookup}__in": orgs})

    def has_module_permission(self, request: HttpRequest) -> bool:
        return may_administer(request)

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return may_administer(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return may_administer(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return may_administer(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_inlines(self, request: HttpRequest, obj: Model | None) -> list:
        # An object's rows are added once it exists.
        return self.inlines if obj is not None else []

    def get_deleted_objects(self, objs, request: HttpRequest):
        deleted, counts, _perms_needed, protected = super().get_deleted_objects(objs, request)
        # The service decides what may go (roles, locks), not Django's model permissions
        # on the rows that cascade (comments, for one, are view-only here).
        return deleted, counts, set(), protected

    # Every change goes through a service: a subclass that allows one says which.
    def save_model(self, request, obj, form, change) -> None:
        raise NotImplementedError(f"{type(self).__name__} saves through a service")

    def save_related(self, request, form, formsets, change) -> None:
        # Not form.save_m2m(): related rows change through services, in save_formset.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def save_formset(self, request, form, formset, change) -> None:
        raise NotImplementedError(f"{type(self).__name__} saves {formset.model.__name__} rows")

    def delete_model(self, request, obj) -> None:
        raise NotImplementedError(f"{type(self).__name__} deletes through a service")

    def delete_queryset(self, request, queryset) -> None:
        raise NotImplementedError(f"{type(self).__name__} deletes through a service")

    def get_object_or_404(self, request: HttpRequest, object_id: str) -> Model:
        """The object if it is in the user's orgs. Staff who administer no org are refused
        outright (403); another org's object is as absent as a missing one (404)."""
        if not may_administer(request):
            raise PermissionDenied
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404(f"{self.opts.verbose_name} not found")
        return obj

    def change_url(self, obj: Model) -> str:
        return reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_change",
            args=[quote(obj.pk)],
            current_app=self.admin_site.name,
        )

    def refuse(self, request: HttpRequest, error: RegistryError, url: str) -> HttpResponse:
        self.message_user(request, error.message, messages.ERROR)
        return HttpResponseRedirect(url)

    # The admin runs a change form, a delete and an action each in one transaction; a
    # RegistryError leaves it, so everything the request did is rolled back, then shown.
    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if object_id is not None:
            self.get_object_or_404(request, object_id)
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except RegistryError as error:
            return self.refuse(request, error, request.get_full_path())

    def delete_view(self, request, object_id, extra_context=None):
        obj = self.get_object_or_404(request, object_id)
        try:
            return super().delete_view(request, object_id, extra_context)
        except RegistryError as error:
            return self.refuse(request, error, self.change_url(obj))

    def changelist_view(self, request, extra_context=None):
        try:
            return super().changelist_view(request, extra_context)
        except RegistryError as error:
            return self.refuse(request, error, request.get_full_path())

    def response_action(self, request, queryset):
        # An action (delete selected) applies to all the selected rows or to none.
        with transaction.atomic(using=router.db_for_write(self.model)):
            return super().response_action(request, queryset)


class AuditedAdmin(OrgScoped, SimpleHistoryAdmin):
    """For the models simple-history records: their "History" page, scoped like the rest.
    Reverting to an old record is off: it would write around the services and locks."""

    def history_view(self, request, object_id, extra_context=None):
        if admin_org_ids(request) is not None:
            self.get_object_or_404(request, object_id)
        return super().history_view(request, object_id, extra_context)

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        if request.method != "GET":
            raise PermissionDenied("reverting to an old record is not possible here")
        if admin_org_ids(request) is not None:
            self.get_object_or_404(request, object_id)
        return super().history_form_view(request, object_id, version_id, extra_context)

    def revert_disabled(self, request, obj=None) -> bool:
        return True


class LogAdmin(OrgScoped, admin.ModelAdmin):
    """For rows without simple-history (the activity log, blobs): shown, never changed."""

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ScopedInline(admin.TabularInline):
    """Rows of the object being edited, open to the admin of its org. The parent admin's
    save_formset hands each added, changed or deleted row to a service."""

    extra = 1  # pages work without JavaScript: one blank row to add

    def has_view_permission(self, request, obj=None) -> bool:
        return may_administer(request, obj)

    def has_add_permission(self, request, obj=None) -> bool:
        return may_administer(request, obj)

    def has_change_permission(self, request, obj=None) -> bool:
        return may_administer(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return may_administer(request, obj)


def changed_values(form: forms.ModelForm, allowed: tuple[str, ...]) -> dict[str, Any]:
    """The cleaned values of the fields a form changed, among those a service accepts."""
    return {name: form.cleaned_data[name] for name in form.changed_data if name in allowed}
