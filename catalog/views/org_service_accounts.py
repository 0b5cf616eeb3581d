"""The Service accounts page of an organization's settings, for its admins: make an
account, make and revoke its API tokens (the plaintext is shown once), deactivate it (the
members' deactivate view, which returns here)."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from catalog.errors import domain_errors
from catalog.views.org_settings import bound
from registry.errors import NotFound
from registry.models import ApiToken, Organization, ServiceAccount, TokenScope
from registry.permissions import get_org_for_user
from registry.services.members import service_account_create
from registry.services.tokens import token_create, token_revoke


class ServiceAccountForm(forms.Form):
    name = forms.CharField(
        max_length=40,
        label="Name",
        help_text="Lowercase letters, digits and hyphens, e.g. ci or nightly-eval.",
    )
    description = forms.CharField(max_length=200, required=False, label="Description")


class AccountTokenForm(forms.Form):
    name = forms.CharField(max_length=100, label="Token name", help_text="e.g. github-actions")
    scope = forms.ChoiceField(
        choices=TokenScope.choices, initial=TokenScope.READ, widget=forms.RadioSelect, label="Scope"
    )
    expires_at = forms.DateTimeField(
        required=False, label="Expires", help_text="Optional, e.g. 2027-01-31 12:00."
    )


# The session key that carries a new token's plaintext from its POST to the page that
# shows it, once (catalog/views/tokens.py does the same for personal tokens).
NEW_ACCOUNT_TOKEN = "catalog.new_account_token"


def _account(organization: Organization, name: str) -> ServiceAccount:
    account = (
        ServiceAccount.objects.select_related("user", "org")
        .filter(org=organization, name=name)
        .first()
    )
    if account is None:
        raise NotFound(f"service account {name} of {organization.slug} not found")
    return account


def _page(
    request: HttpRequest, organization: Organization, plaintext: dict | None = None
) -> HttpResponse:
    tokens = ApiToken.objects.order_by("-created_at", "-id")
    accounts = list(
        ServiceAccount.objects.filter(org=organization)
        .select_related("user")
        .prefetch_related(Prefetch("user__api_tokens", queryset=tokens, to_attr="tokens"))
        .order_by("name")
    )
    for account in accounts:
        # A form per account, each with ids of its own.
        account.token_form = AccountTokenForm(auto_id=f"id_{account.name}_token_%s")
    context = {
        "org": organization,
        "accounts": accounts,
        "form": ServiceAccountForm(),
        "plaintext": plaintext,
        "section": "service-accounts",
    }
    response = render(request, "catalog/org_service_accounts.html", context)
    if plaintext is not None:
        response["Cache-Control"] = "no-store"  # the token is in this response only
    return response


@login_required
@domain_errors
def org_service_accounts(request: HttpRequest, org: str) -> HttpResponse:
    organization = get_org_for_user(request.user, org, "admin")
    shown = request.session.pop(NEW_ACCOUNT_TOKEN, None)
    plaintext = None
    if shown is not None and shown["org"] == organization.pk:
        token = ApiToken.objects.select_related("user").filter(pk=shown["token"]).first()
        if token is not None:
            account = _account(organization, shown["account"])
            plaintext = {"account": account, "token": token, "raw": shown["raw"]}
    return _page(request, organization, plaintext)


@login_required
@require_POST
@domain_errors
def service_account_create_view(request: HttpRequest, org: str) -> HttpResponse:
    organization = get_org_for_user(request.user, org, "admin")
    data = bound(ServiceAccountForm(request.POST))
    account = service_account_create(actor=request.user, org=organization, **data)
    messages.success(
        request,
        f"Service account {account.user.get_username()} created: make it a token, and grant "
        "it what it needs on the models' Settings tab or through a team.",
    )
    return redirect("catalog:org-service-accounts", org=organization.slug)


@login_required
@require_POST
@domain_errors
def service_account_token_view(request: HttpRequest, org: str, name: str) -> HttpResponse:
    organization = get_org_for_user(request.user, org, "admin")
    account = _account(organization, name)
    data = bound(AccountTokenForm(request.POST))
    token, raw = token_create(actor=request.user, user=account.user, org=organization, **data)
    # Post/redirect/get, as the personal tokens page: a reload must not make a second token.
    # The plaintext waits in the (server-side) session until the page shows it once.
    request.session[NEW_ACCOUNT_TOKEN] = {
        "org": organization.pk,
        "account": name,
        "token": token.pk,
        "raw": raw,
    }
    return redirect("catalog:org-service-accounts", org=organization.slug)


@login_required
@require_POST
@domain_errors
def service_account_token_revoke_view(
    request: HttpRequest, org: str, name: str, token_id: int
) -> HttpResponse:
    organization = get_org_for_user(request.user, org, "admin")
    account = _account(organization, name)
    token = ApiToken.objects.filter(user=account.user, pk=token_id).first()
    if token is None:
        raise NotFound(f"token #{token_id} of {account.user.get_username()} not found")
    token_revoke(actor=request.user, token=token)
    messages.success(request, f"Token {token.prefix}… revoked: it is refused from now on.")
    return redirect("catalog:org-service-accounts", org=organization.slug)
