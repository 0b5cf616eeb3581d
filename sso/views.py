"""Single sign-on's pages: the sign-in start and callback (mozilla-django-oidc's views, with
a message on the login page for whatever fails), and an org's SSO settings page, where its
admins map the provider's groups to membership, role and teams.

The settings page fetches the org as every org settings page does (get_org_for_user(...,
"admin")): another org's page is 404, a member who is not an admin gets 403.
"""

import logging

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from catalog.errors import domain_errors
from catalog.views.org_settings import bound
from registry.errors import NotFound
from registry.models import Organization, Role, Team
from registry.permissions import get_org_for_user
from sso.models import GroupMapping
from sso.services import mapping_create, mapping_delete, mapping_update

security_log = logging.getLogger("modelvault.security")


def _enabled() -> None:
    if not settings.SSO_ENABLED:
        raise Http404("single sign-on is not configured")


def _failed(request: HttpRequest, exc: Exception) -> HttpResponse:
    security_log.warning("single sign-on failed: %s: %s", type(exc).__name__, exc)
    messages.error(
        request,
        f"Sign-in with {settings.SSO_PROVIDER_NAME} did not work: the provider could not be "
        "reached or its answer did not check out. Try again, or ask an administrator.",
    )
    return redirect("login")


@require_GET
def sso_login(request: HttpRequest) -> HttpResponse:
    """The "Sign in with ..." link: off to the provider (a link, not a form: the page's
    Content-Security-Policy lets forms post to this server only)."""
    _enabled()
    from sso import signin  # loaded on the first sign-in (sso/signin.py)

    try:
        str(settings.OIDC_OP_AUTHORIZATION_ENDPOINT)  # discovered here, if it is to be
        return signin.start(request)
    except signin.FAILURES as exc:
        return _failed(request, exc)


@require_GET
def sso_callback(request: HttpRequest) -> HttpResponse:
    """Where the provider sends the browser back with a code."""
    _enabled()
    from sso import signin

    try:
        response = signin.callback(request)
    except signin.FAILURES as exc:
        return _failed(request, exc)
    if not request.user.is_authenticated and not len(messages.get_messages(request)):
        messages.error(request, f"Sign-in with {settings.SSO_PROVIDER_NAME} did not complete.")
    return response


# The org's SSO settings page


class MappingForm(forms.Form):
    group = forms.CharField(
        max_length=200, label="Group", help_text="A group name as the provider's claim sends it."
    )
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER, label="Role")
    teams = forms.ModelMultipleChoiceField(
        queryset=Team.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Teams",
    )

    def __init__(self, *args, org: Organization, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["teams"]
        field.queryset = Team.objects.filter(org=org).order_by("name")
        field.label_from_instance = lambda team: team.name


def _mapping(organization: Organization, mapping_id: int) -> GroupMapping:
    mapping = (
        GroupMapping.objects.select_related("org").filter(org=organization, pk=mapping_id).first()
    )
    if mapping is None:
        raise NotFound(f"mapping #{mapping_id} of {organization.slug} not found")
    return mapping


@login_required
@domain_errors
def org_sso(request: HttpRequest, org: str) -> HttpResponse:
    organization = get_org_for_user(request.user, org, "admin")
    teams = list(Team.objects.filter(org=organization).order_by("name"))
    mappings = list(
        GroupMapping.objects.filter(org=organization)
        .prefetch_related(Prefetch("teams", queryset=Team.objects.order_by("name")))
        .order_by("group")
    )
    for mapping in mappings:
        mapping.team_ids = {team.pk for team in mapping.teams.all()}
    context = {
        "org": organization,
        "mappings": mappings,
        "teams": teams,
        "roles": Role.choices,
        "form": MappingForm(org=organization),
        "sso_enabled": settings.SSO_ENABLED,
        "provider_name": settings.SSO_PROVIDER_NAME,
        "groups_claim": settings.OIDC_GROUPS_CLAIM,
        "section": "sso",
    }
    return render(request, "sso/org_sso.html", context)


@login_required
@require_POST
@domain_errors
def mapping_create_view(request: HttpRequest, org: str) -> HttpResponse:
    organization = get_org_for_user(request.user, org, "admin")
    data = bound(MappingForm(request.POST, org=organization))
    mapping = mapping_create(actor=request.user, org=organization, **data)
    messages.success(request, f"Group {mapping.group} is mapped to {organization.slug}.")
    return redirect("sso:org-sso", org=organization.slug)


@login_required
@require_POST
@domain_errors
def mapping_update_view(request: HttpRequest, org: str, mapping_id: int) -> HttpResponse:
    organization = get_org_for_user(request.user, org, "admin")
    mapping = _mapping(organization, mapping_id)
    data = bound(MappingForm(request.POST, org=organization))
    mapping = mapping_update(actor=request.user, mapping=mapping, **data)
    messages.success(request, f"Mapping of group {mapping.group} saved.")
    return redirect("sso:org-sso", org=organization.slug)


@login_required
@require_POST
@domain_errors
def mapping_delete_view(request: HttpRequest, org: str, mapping_id: int) -> HttpResponse:
    organization = get_org_for_user(request.user, org, "admin")
    mapping = _mapping(organization, mapping_id)
    mapping_delete(actor=request.user, mapping=mapping)
    messages.success(request, f"Mapping of group {mapping.group} deleted.")
    return redirect("sso:org-sso", org=organization.slug)
