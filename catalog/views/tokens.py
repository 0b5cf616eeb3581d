"""The profile page for personal API tokens: list, make (shown once), revoke."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from registry.errors import RegistryError
from registry.models import ApiToken
from registry.services.tokens import token_create, token_revoke


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What the token is for, e.g. CI.")
    expires_at = forms.DateTimeField(required=False, help_text="Optional, e.g. 2027-01-31 12:00.")


def _page(request: HttpRequest, form: TokenForm, plaintext: str | None = None, status=200):
    tokens = ApiToken.objects.filter(user=request.user)
    context = {"tokens": tokens, "form": form, "plaintext": plaintext}
    return render(request, "catalog/tokens.html", context, status=status)


@login_required
def token_list(request: HttpRequest) -> HttpResponse:
    return _page(request, TokenForm())


@login_required
@require_POST
def token_create_view(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.POST)
    if not form.is_valid():
        return _page(request, form, status=400)
    try:
        _, raw = token_create(
            actor=request.user,
            user=request.user,
            name=form.cleaned_data["name"],
            expires_at=form.cleaned_data["expires_at"],
        )
    except RegistryError as error:
        form.add_error(None, error.message)
        return _page(request, form, status=error.status)
    # Rendered, not redirected: the plaintext exists only in this response.
    response = _page(request, TokenForm(), plaintext=raw)
    response["Cache-Control"] = "no-store"
    return response


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
