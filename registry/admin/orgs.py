"""Organizations (settings and members) and teams."""

from django import forms
from django.contrib import admin
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin
from django.contrib.auth.models import Group

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
from registry.models import Membership, Organization, Team
from registry.services.orgs import (
    ORG_SETTINGS,
    membership_remove,
    membership_set,
    org_create,
    org_update,
    team_create,
    team_delete,
    team_set_members,
)

User = get_user_model()


class MembershipForm(forms.ModelForm):
    # A username, not a list of every user of the instance: an org admin sees their own
    # members, and names the one to add.
    username = forms.CharField(max_length=150)

    class Meta:
        model = Membership
        fields = ("role",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            # A membership is one user's: change its role, or remove it and add another.
            self.initial["username"] = self.instance.user.get_username()
            self.fields["username"].disabled = True

    def clean_username(self) -> str:
        username = self.cleaned_data["username"]
        if not self.instance.pk:
            user = User.objects.filter(username=username, is_active=True).first()
            if user is None:
                raise forms.ValidationError(f"no active user is called {username}")
            self.instance.user = user
        return username


class MembershipInline(ScopedInline):
    model = Membership
    form = MembershipForm
    fields = ("username", "role", "created_at")
    readonly_fields = ("created_at",)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user")


class OrganizationCreationForm(forms.ModelForm):
    first_admin = forms.ModelChoiceField(
        queryset=User.objects.filter(is_active=True).order_by("username"),
        required=False,
        help_text="Becomes the organization's first admin; you, if left empty.",
    )

    class Meta:
        model = Organization
        fields = ("slug", "name", "default_lock_level", "required_approvals", "closed_is_final")


@admin.register(Organization)
class OrganizationAdmin(AuditedAdmin):
    org_lookup = "pk"
    list_display = ("slug", "name", "default_lock_level", "required_approvals", "closed_is_final")
    search_fields = ("slug", "name")
    fields = ("slug", *ORG_SETTINGS, "created_at")
    inlines = [MembershipInline]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("slug", *ORG_SETTINGS, "first_admin")
        return self.fields

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else ("slug", "created_at")

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = OrganizationCreationForm
        return super().get_form(request, obj, **kwargs)

    def has_add_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_superuser  # as org_create says

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # an organization and its audit trail are never deleted

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            settings = changed_values(form, ORG_SETTINGS)
            if settings:
                org_update(actor=request.user, org=stored(obj), **settings)
            return
        org = org_create(
            actor=request.user,
            slug=data["slug"],
            admin=data["first_admin"],
            **{name: data[name] for name in ORG_SETTINGS},
        )
        adopt(obj, org)

    def save_formset(self, request, form, formset, change):
        org = stored(form.instance)
        added, changed, deleted = formset_changes(formset)
        # Additions first: a form that names a new admin and drops the old one succeeds.
        for row in added + changed:
            membership_set(
                actor=request.user, org=org, user=row.instance.user, role=row.instance.role
            )
        for row in deleted:
            membership_remove(actor=request.user, org=org, user=row.instance.user)


class TeamForm(forms.ModelForm):
    members = forms.ModelMultipleChoiceField(queryset=User.objects.none(), required=False)

    class Meta:
        model = Team
        fields = ("org", "name")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            members = User.objects.filter(groups=self.instance.group_id)
            self.initial["members"] = list(members.values_list("pk", flat=True))


@admin.register(Team)
class TeamAdmin(AuditedAdmin):
    form = TeamForm
    list_display = ("name", "org")
    list_select_related = ("org",)
    search_fields = ("name",)
    fields = ("org", "name", "members", "created_at")

    def get_readonly_fields(self, request, obj=None):
        # No service renames a team or moves it: make another one.
        return ("created_at",) if obj is None else ("org", "name", "created_at")

    def has_add_permission(self, request) -> bool:
        return may_administer(request)

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        orgs = admin_orgs(request) if obj is None else Organization.objects.filter(pk=obj.org_id)
        if "org" in form.base_fields:
            form.base_fields["org"].queryset = orgs
        # A new field, not the declared one changed in place: that one is shared by requests.
        form.base_fields["members"] = forms.ModelMultipleChoiceField(
            queryset=User.objects.filter(is_active=True, memberships__org__in=orgs)
            .distinct()
            .order_by("username"),
            required=False,
            widget=FilteredSelectMultiple("members", is_stacked=False),
            help_text="Members of the team's organization.",
        )
        return form

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        team = obj
        if not change:
            team = team_create(actor=request.user, org=data["org"], name=data["name"])
            adopt(obj, team)
        if "members" in form.changed_data:
            team_set_members(actor=request.user, team=stored(team), users=data["members"])

    def delete_model(self, request, obj):
        team_delete(actor=request.user, team=obj)

    def delete_queryset(self, request, queryset):
        for team in queryset.select_related("org", "group"):
            team_delete(actor=request.user, team=team)


class GroupAdminWithoutTeams(GroupAdmin):
    """Django's groups, minus those of teams: a team's members change only in the Team
    admin, through team_set_members and its activity event."""

    def get_queryset(self, request):
        return super().get_queryset(request).filter(team__isnull=True)


if admin.site.is_registered(Group):
    admin.site.unregister(Group)
admin.site.register(Group, GroupAdminWithoutTeams)
