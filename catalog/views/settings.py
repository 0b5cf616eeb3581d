"""The model card's Settings tab: visibility, required approvals, sharing, branches."""

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from catalog.errors import domain_errors
from catalog.forms import GrantForm, ModelSettingsForm, first_error
from registry.errors import Invalid, NotFound
from registry.models import Branch, RegisteredModel, Team
from registry.permissions import get_model_for_user
from registry.services.branches import branch_create, branch_set_protection
from registry.services.registered_models import model_grant, model_update, user_by_name


def _settings_url(model: RegisteredModel) -> str:
    return reverse("catalog:model", args=[model.org.slug, model.name]) + "?tab=settings"


@login_required
@require_POST
@domain_errors
def model_settings_update(request: HttpRequest, org: str, model: str) -> HttpResponse:
    registered = get_model_for_user(request.user, org, model)
    form = ModelSettingsForm(request.POST)
    if not form.is_valid():
        raise Invalid(first_error(form))
    model_update(actor=request.user, model=registered, **form.cleaned_data)
    messages.success(request, "Settings saved.")
    return redirect(_settings_url(registered))


@login_required
@require_POST
@domain_errors
def model_share(request: HttpRequest, org: str, model: str) -> HttpResponse:
    registered = get_model_for_user(request.user, org, model)
    form = GrantForm(request.POST)
    if not form.is_valid():
        raise Invalid(first_error(form))
    user = team = None
    if form.cleaned_data["username"]:
        try:
            user = user_by_name(form.cleaned_data["username"])
        except NotFound as exc:  # a typo in a form field, not a missing page
            raise Invalid(exc.message) from exc
    else:
        team = Team.objects.filter(org=registered.org, name=form.cleaned_data["team"]).first()
        if team is None:
            raise Invalid(f"team {form.cleaned_data['team']} not found")
    model_grant(
        actor=request.user,
        model=registered,
        permission=form.cleaned_data["permission"],
        user=user,
        team=team,
    )
    messages.success(request, f"Granted {form.cleaned_data['permission']}.")
    return redirect(_settings_url(registered))


# Branches (SPEC 3.6): writers open branches; org admins protect and release them.


class BranchForm(forms.Form):
    name = forms.CharField(max_length=128, label="New branch")


class ProtectionForm(forms.Form):
    protected = forms.TypedChoiceField(
        choices=[("true", "protect"), ("false", "release")],
        coerce=lambda value: value == "true",
    )


def branches_context(model: RegisteredModel) -> dict[str, Any]:
    """The Branches panel: every branch in one query. Its controls show by the page's
    `access` (display only: the services decide)."""
    return {
        "branches": Branch.objects.filter(model=model)
        .select_related("created_by")
        .order_by("name"),
        "branch_form": BranchForm(),
    }


@login_required
@require_POST
@domain_errors
def branch_create_view(request: HttpRequest, org: str, model: str) -> HttpResponse:
    registered = get_model_for_user(request.user, org, model)
    form = BranchForm(request.POST)
    if not form.is_valid():
        raise Invalid(first_error(form))
    branch = branch_create(actor=request.user, model=registered, name=form.cleaned_data["name"])
    messages.success(request, f"Branch {branch.name} created.")
    return redirect(_settings_url(registered) + "#branches")


@login_required
@require_POST
@domain_errors
def branch_protect_view(request: HttpRequest, org: str, model: str, branch: str) -> HttpResponse:
    registered = get_model_for_user(request.user, org, model)
    found = Branch.objects.filter(model=registered, name=branch).first()
    if found is None:
        raise NotFound(f"branch {branch} of model {registered.name} not found")
    form = ProtectionForm(request.POST)
    if not form.is_valid():
        raise Invalid(first_error(form))
    changed = branch_set_protection(
        actor=request.user, branch=found, protected=form.cleaned_data["protected"]
    )
    state = "protected" if changed.protected else "no longer protected"
    messages.success(request, f"Branch {changed.name} is {state}.")
    return redirect(_settings_url(registered) + "#branches")
