"""The Teams page of an organization's settings, for its admins: make a team, set its
members (members of the org only), delete it."""

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from catalog.errors import domain_errors
from catalog.views.org_settings import bound
from registry.errors import NotFound
from registry.models import Membership, Organization, Team
from registry.permissions import get_org_for_user
from registry.services.orgs import (
    org_members_named,
    team_create,
    team_delete,
    team_set_members,
)

User = get_user_model()


class TeamForm(forms.Form):
    name = forms.CharField(max_length=100, label="New team")


def _team(organization: Organization, team_id: int) -> Team:
    team = Team.objects.select_related("org", "group").filter(org=organization, pk=team_id).first()
    if team is None:
        raise NotFound(f"team #{team_id} of {organization.slug} not found")
    return team


@login_required
@domain_errors
def org_teams(request: HttpRequest, org: str) -> HttpResponse:
    organization = get_org_for_user(request.user, org, "admin")
    members = User.objects.order_by("username")
    teams = list(
        Team.objects.filter(org=organization)
        .select_related("group")
        .prefetch_related(Prefetch("group__user_set", queryset=members, to_attr="members"))
        .order_by("name")
    )
    for team in teams:
        team.member_names = {user.get_username() for user in team.group.members}
    usernames = list(
        Membership.objects.filter(org=organization)
        .order_by("user__username")
        .values_list("user__username", flat=True)
    )
    context = {
        "org": organization,
        "teams": teams,
        "usernames": usernames,
        "form": TeamForm(),
        "section": "teams",
    }
    return render(request, "catalog/org_teams.html", context)


@login_required
@require_POST
@domain_errors
def team_create_view(request: HttpRequest, org: str) -> HttpResponse:
    organization = get_org_for_user(request.user, org, "admin")
    data = bound(TeamForm(request.POST))
    team = team_create(actor=request.user, org=organization, name=data["name"])
    messages.success(request, f"Team {team.name} created: tick its members below.")
    return redirect("catalog:org-teams", org=organization.slug)


@login_required
@require_POST
@domain_errors
def team_members_view(request: HttpRequest, org: str, team_id: int) -> HttpResponse:
    organization = get_org_for_user(request.user, org, "admin")
    team = _team(organization, team_id)
    users = org_members_named(organization, request.POST.getlist("members"))
    team_set_members(actor=request.user, team=team, users=users)
    messages.success(request, f"Members of team {team.name} saved.")
    return redirect("catalog:org-teams", org=organization.slug)


@login_required
@require_POST
@domain_errors
def team_delete_view(request: HttpRequest, org: str, team_id: int) -> HttpResponse:
    organization = get_org_for_user(request.user, org, "admin")
    team = _team(organization, team_id)
    team_delete(actor=request.user, team=team)
    messages.success(request, f"Team {team.name} deleted.")
    return redirect("catalog:org-teams", org=organization.slug)
