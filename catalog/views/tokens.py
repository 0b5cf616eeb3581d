"""The profile page for personal API tokens: list, make (shown once, after a redirect;
read-only or read-write, bound to one of the user's organizations), revoke."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from registry.errors import RegistryError
from registry.models import ApiToken, Organization, TokenScope
from registry.services.tokens import token_create, token_revoke


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What the token is for, e.g. CI.")
    org = forms.ModelChoiceField(
        queryset=Organization.objects.none(),
        required=False,
        label="Organization",
        help_text="The token acts in this organization only. Left empty: your only one.",
    )
    scope = forms.ChoiceField(
        choices=TokenScope.choices,
        initial=TokenScope.WRITE,
        required=False,
        widget=forms.RadioSelect,
        help_text="A read-only token is refused every change.",
    )
    expires_at = forms.DateTimeField(required=False, help_text="Optional, e.g. 2027-01-31 12:00.")

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        orgs = Organization.objects.filter(memberships__user=user).order_by("slug")
        self.fields["org"].queryset = orgs
        if len(orgs) == 1:
            self.fields["org"].initial = orgs[0].pk


def _page(request: HttpRequest, form: TokenForm, plaintext: str | None = None, status=200):
    tokens = ApiToken.objects.filter(user=request.user).select_related("org")
    context = {"tokens": tokens, "form": form, "plaintext": plaintext}
    return render(request, "catalog/tokens.html", context, status=status)


# The session key that carries a new token's plaintext from its POST to the page that
# shows it, once: reloading that page, or going back to it, makes and shows nothing.
NEW_TOKEN = "catalog.new_token"


@login_required
def token_list(request: HttpRequest) -> HttpResponse:
    plaintext = request.session.pop(NEW_TOKEN, None)
    response = _page(request, TokenForm(user=request.user), plaintext=plaintext)
    if plaintext is not None:
        response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def token_create_view(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.POST, user=request.user)
    if not form.is_valid():
        return _page(request, form, status=400)
    try:
        _, raw = token_create(
            actor=request.user,
            user=request.user,
            name=form.cleaned_data["name"],
            scope=form.cleaned_data["scope"] or TokenScope.WRITE,
            org=form.cleaned_data["org"],
            expires_at=form.cleaned_data["expires_at"],
        )
    except RegistryError as error:
        form.add_error(None, error.message)
        return _page(request, form, status=error.status)
    # Post/redirect/get: a reload must not make a second token. The plaintext waits in the
    # (server-side) session until the page shows it once.
    request.session[NEW_TOKEN] = raw
    messages.success(request, f"Token {form.cleaned_data['name']} made.")
    return redirect("catalog:tokens")


@login_required
@require_POST
def token_revoke_view(request: HttpRequest, token_id: int) -> HttpResponse:
    token = ApiToken.objects.filter(pk=token_id, user=request.user).first()
    if token is None:
        messages.error(request, "Token not found.")
    else:
        token_revoke(actor=request.user, token=token)
        messages.success(request, f"Token {token.prefix}… revoked.")
    return redirect("catalog:tokens")
