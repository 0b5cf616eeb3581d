"""An organization's settings area, for its admins (SPEC 4.6): the org's settings and its
members (invite, add, role, remove, deactivate, reactivate). Teams and service accounts
are in org_teams and org_service_accounts.

Every page fetches the org with get_org_for_user(..., "admin"): another org's pages are 404
(as if they did not exist), a member who is not an admin gets 403. Members are looked up
within the org only, so another org's users are 404 too.
"""

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from catalog.errors import domain_errors
from catalog.forms import first_error
from registry.errors import Invalid, NotFound
from registry.models import LockLevel, Membership, Organization, Role, ServiceAccount, Team
from registry.permissions import get_org_for_user
from registry.services.members import (
    member_add,
    member_deactivate,
    member_invitation_renew,
    member_invite,
    member_reactivate,
)
from registry.services.orgs import ORG_UPDATABLE, membership_remove, membership_set, org_update


class OrgSettingsForm(forms.Form):
    name = forms.CharField(max_length=200, label="Name")
    default_lock_level = forms.ChoiceField(choices=LockLevel.choices, label="Default lock level")
    required_approvals = forms.IntegerField(min_value=1, max_value=20, label="Required approvals")
    closed_is_final = forms.BooleanField(
        required=False,
        label="Compliance mode",
        help_text="A closed version can never be lowered, by anyone. Cannot be turned off.",
    )
    default_reviewers = forms.ModelChoiceField(
        queryset=Team.objects.none(),
        required=False,
        empty_label="None: only org admins review new models",
        label="Default reviewers",
        help_text="A team granted approve on every new model, so that a request has someone "
        "to review it. Models made before keep their grants.",
    )

    def __init__(self, *args, org: Organization, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["default_reviewers"]
        field.queryset = Team.objects.filter(org=org).order_by("name")
        field.label_from_instance = lambda team: team.name


class InviteForm(forms.Form):
    username = forms.CharField(max_length=150, label="Username")
    email = forms.EmailField(label="E-mail")
    first_name = forms.CharField(max_length=150, required=False, label="First name")
    last_name = forms.CharField(max_length=150, required=False, label="Last name")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER, label="Role")


class AddMemberForm(forms.Form):
    username = forms.CharField(max_length=150, label="Existing user")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER, label="Role")


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices, label="Role")


def bound(form: forms.Form) -> dict[str, Any]:
    """The form's valid data, or Invalid naming its first error (a message on the page)."""
    if not form.is_valid():
        raise Invalid(first_error(form))
    return form.cleaned_data


def back(request: HttpRequest, default: str) -> HttpResponse:
    """Redirect to the form's `next` (a page of this site), else to `default`."""
    target = request.POST.get("next")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(target)
    return redirect(default)


def member_of(org: Organization, username: str) -> Membership:
    membership = (
        Membership.objects.select_related("user").filter(org=org, user__username=username).first()
    )
    if membership is None:
        raise NotFound(f"member {username} of {org.slug} not found")
    return membership


# The organization's settings


@login_required
@domain_errors
def org_settings(request: HttpRequest, org: str) -> HttpResponse:
    organization = get_org_for_user(request.user, org, "admin")
    initial = {field: getattr(organization, field) for field in ORG_UPDATABLE}
    form = OrgSettingsForm(request.POST or None, initial=initial, org=organization)
    if request.method == "POST":
        data = bound(form)
        changes = {field: data[field] for field in form.changed_data}
        if changes:
            org_update(actor=request.user, org=organization, **changes)
            messages.success(request, "Organization settings saved.")
        return redirect("catalog:org-settings", org=organization.slug)
    context = {"org": organization, "form": form, "section": "settings"}
    return render(request, "catalog/org_settings.html", context)


# Members


def _members_page(
    request: HttpRequest, organization: Organization, link: dict | None = None
) -> HttpResponse:
    memberships = list(
        Membership.objects.filter(org=organization)
        .select_related("user")
        .order_by("user__username")
    )
    teams: dict[int, list[str]] = {}
    rows = (
        Team.objects.filter(org=organization)
        .order_by("name")
        .values_list("group__user", "name")
        .exclude(group__user=None)
    )
    for user_id, name in rows:
        teams.setdefault(user_id, []).append(name)
    accounts = set(
        ServiceAccount.objects.filter(org=organization).values_list("user_id", flat=True)
    )
    members = [
        {
            "membership": m,
            "user": m.user,
            "teams": teams.get(m.user_id, []),
            "service_account": m.user_id in accounts,
            "invited": m.user_id not in accounts
            and not m.user.has_usable_password()
            and m.user.last_login is None,
        }
        for m in memberships
    ]
    context = {
        "org": organization,
        "members": members,
        "roles": Role.choices,
        "invite_form": InviteForm(),
        "add_form": AddMemberForm(auto_id="id_add_%s"),  # ids apart from the invitation's
        "link": link,
        "section": "members",
    }
    response = render(request, "catalog/org_members.html", context)
    if link is not None:
        response["Cache-Control"] = "no-store"  # the link is in this response only
    return response


@login_required
@domain_errors
def org_members(request: HttpRequest, org: str) -> HttpResponse:
    return _members_page(request, get_org_for_user(request.user, org, "admin"))


@login_required
@require_POST
@domain_errors
def member_invite_view(request: HttpRequest, org: str) -> HttpResponse:
    organization = get_org_for_user(request.user, org, "admin")
    data = bound(InviteForm(request.POST))
    membership, link = member_invite(actor=request.user, org=organization, **data)
    username = membership.user.get_username()
    messages.success(request, f"{username} is invited; an e-mail with the link is on its way.")
    # Rendered, not redirected: the set-password link exists only in this response.
    return _members_page(request, organization, {"username": username, "url": link})


@login_required
@require_POST
@domain_errors
def member_add_view(request: HttpRequest, org: str) -> HttpResponse:
    organization = get_org_for_user(request.user, org, "admin")
    data = bound(AddMemberForm(request.POST))
    member_add(actor=request.user, org=organization, **data)
    messages.success(request, f"{data['username']} added to {organization.slug}.")
    return redirect("catalog:org-members", org=organization.slug)


@login_required
@require_POST
@domain_errors
def member_role_view(request: HttpRequest, org: str, username: str) -> HttpResponse:
    organization = get_org_for_user(request.user, org, "admin")
    membership = member_of(organization, username)
    data = bound(RoleForm(request.POST))
    membership_set(actor=request.user, org=organization, user=membership.user, role=data["role"])
    messages.success(request, f"{username} is now {data['role']} of {organization.slug}.")
    return redirect("catalog:org-members", org=organization.slug)


@login_required
@require_POST
@domain_errors
def member_remove_view(request: HttpRequest, org: str, username: str) -> HttpResponse:
    organization = get_org_for_user(request.user, org, "admin")
    membership = member_of(organization, username)
    membership_remove(actor=request.user, org=organization, user=membership.user)
    messages.success(request, f"{username} removed from {organization.slug}.")
    return redirect("catalog:org-members", org=organization.slug)


@login_required
@require_POST
@domain_errors
def member_deactivate_view(request: HttpRequest, org: str, username: str) -> HttpResponse:
    organization = get_org_for_user(request.user, org, "admin")
    membership = member_of(organization, username)
    member_deactivate(actor=request.user, org=organization, user=membership.user)
    messages.success(request, f"{username} is deactivated.")
    return back(request, reverse("catalog:org-members", args=[organization.slug]))


@login_required
@require_POST
@domain_errors
def member_reactivate_view(request: HttpRequest, org: str, username: str) -> HttpResponse:
    organization = get_org_for_user(request.user, org, "admin")
    membership = member_of(organization, username)
    member_reactivate(actor=request.user, org=organization, user=membership.user)
    messages.success(request, f"{username} is active again.")
    return back(request, reverse("catalog:org-members", args=[organization.slug]))


@login_required
@require_POST
@domain_errors
def member_invitation_view(request: HttpRequest, org: str, username: str) -> HttpResponse:
    organization = get_org_for_user(request.user, org, "admin")
    membership = member_of(organization, username)
    link = member_invitation_renew(actor=request.user, org=organization, user=membership.user)
    messages.success(request, f"A new link for {username}; it is also on its way by e-mail.")
    return _members_page(request, organization, {"username": username, "url": link})
