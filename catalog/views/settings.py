"""The model card's Settings tab: visibility, required approvals, sharing."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from catalog.errors import domain_errors
from catalog.forms import GrantForm, ModelSettingsForm, first_error
from registry.errors import Invalid, NotFound
from registry.models import RegisteredModel, Team
from registry.permissions import get_model_for_user
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
