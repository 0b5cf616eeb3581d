"""Preferences, watch buttons, and webhook management (the model's Settings tab includes
config/templates/notifications/includes/_webhooks.html, which posts here). The domain's
refusals are the web UI's: catalog.errors.domain_errors maps them, as for every page."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from catalog.errors import back_url, domain_errors
from notifications.forms import PreferencesForm, WebhookForm, WebhookUpdateForm
from notifications.models import Delivery, Webhook
from notifications.services import (
    delivery_replay,
    get_webhook_for_user,
    preferences_of,
    preferences_set,
    webhook_create,
    webhook_delete,
    webhook_update,
)
from registry.errors import Invalid, NotFound
from registry.models import Organization, RegisteredModel
from registry.permissions import get_model_for_user, get_org_for_user
from registry.services.registered_models import model_unwatch, model_watch

DELIVERY_LOG = 50


@login_required
def edit_preferences(request: HttpRequest) -> HttpResponse:
    current = preferences_of(request.user)
    form = PreferencesForm(request.POST or None, current=current)
    if request.method == "POST" and form.is_valid():
        preferences_set(actor=request.user, enabled=form.cleaned_data)
        messages.success(request, "Your notification preferences are saved.")
        return redirect("notifications:preferences")
    return render(request, "notifications/preferences.html", {"form": form})


@login_required
@require_POST
@domain_errors
def watch_model(request: HttpRequest, org: str, model: str) -> HttpResponse:
    registered = get_model_for_user(request.user, org, model)
    model_watch(actor=request.user, model=registered)
    messages.success(request, f"You now watch {registered.name}.")
    return HttpResponseRedirect(back_url(request))


@login_required
@require_POST
@domain_errors
def unwatch_model(request: HttpRequest, org: str, model: str) -> HttpResponse:
    registered = get_model_for_user(request.user, org, model)
    model_unwatch(actor=request.user, model=registered)
    messages.success(request, f"You no longer watch {registered.name}.")
    return HttpResponseRedirect(back_url(request))


def _create(request, org: Organization, model: RegisteredModel | None) -> HttpResponse:
    form = WebhookForm(request.POST)
    if form.is_valid():
        webhook = webhook_create(
            actor=request.user,
            org=org,
            model=model,
            url=form.cleaned_data["url"],
            events=form.cleaned_data["events"],
        )
        messages.success(request, f"Webhook #{webhook.pk} created: its secret is on its page.")
        return redirect("notifications:webhook", pk=webhook.pk)
    messages.error(request, "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
    return HttpResponseRedirect(back_url(request))


@login_required
@require_POST
@domain_errors
def create_model_webhook(request: HttpRequest, org: str, model: str) -> HttpResponse:
    registered = get_model_for_user(request.user, org, model, "write")
    return _create(request, registered.org, registered)


@login_required
@domain_errors
def list_org_webhooks(request: HttpRequest, org: str) -> HttpResponse:
    organization = get_org_for_user(request.user, org, "admin")
    if request.method == "POST":
        return _create(request, organization, None)
    webhooks = Webhook.objects.filter(org=organization).select_related("model")
    return render(
        request,
        "notifications/org_webhooks.html",
        {"org": organization, "webhooks": webhooks, "form": WebhookForm()},
    )


@login_required
@domain_errors
def show_webhook(request: HttpRequest, pk: int) -> HttpResponse:
    webhook = get_webhook_for_user(request.user, pk)
    form = WebhookUpdateForm(request.POST or None, instance=webhook)
    if request.method == "POST" and form.is_valid():
        try:
            webhook_update(
                actor=request.user,
                webhook=webhook,
                url=form.cleaned_data["url"],
                events=form.cleaned_data["events"],
                active=form.cleaned_data["active"],
            )
        except Invalid as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, "Webhook saved.")
            return redirect("notifications:webhook", pk=webhook.pk)
    deliveries = Delivery.objects.filter(webhook=webhook).select_related("event")[:DELIVERY_LOG]
    return render(
        request,
        "notifications/webhook.html",
        {"webhook": webhook, "form": form, "deliveries": deliveries},
    )


@login_required
@require_POST
@domain_errors
def delete_webhook(request: HttpRequest, pk: int) -> HttpResponse:
    webhook = get_webhook_for_user(request.user, pk)
    webhook_delete(actor=request.user, webhook=webhook)
    messages.success(request, f"Webhook #{pk} deleted.")
    return redirect("notifications:preferences")


@login_required
@require_POST
@domain_errors
def replay_delivery(request: HttpRequest, pk: int) -> HttpResponse:
    delivery = Delivery.objects.filter(pk=pk).first()
    if delivery is None:
        raise NotFound(f"delivery #{pk} not found")
    try:
        delivery_replay(actor=request.user, delivery=delivery)
    except Invalid as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Delivery #{pk} is queued again.")
    return redirect("notifications:webhook", pk=delivery.webhook_id)
