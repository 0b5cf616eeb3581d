"""Aliases on the version page (SPEC 2, 3.4): point one here, remove one, or ask for the move
or removal of a protected one for review; and `model@alias` in a URL, which names the
version the alias points at now."""

from urllib.parse import quote

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_POST

from approvals.models import RequestKind, Review, StageChangeRequest
from approvals.services import alias_request_create
from catalog.errors import domain_errors
from catalog.forms import AliasForm, AliasRequestForm, first_error
from catalog.views import version_url
from registry.errors import Invalid
from registry.models import Alias, ModelVersion
from registry.permissions import Access, get_version_by_ref, get_version_for_user
from registry.services.aliases import alias_remove, alias_set


def aliases_context(version: ModelVersion, access: Access, user) -> dict:
    """The model's aliases and their pending requests, for the version page: two queries
    (three when a request is pending), whatever the number of versions. The controls show
    by `access` (display only: the services decide)."""
    aliases = list(
        Alias.objects.filter(model_id=version.model_id).select_related("version").order_by("name")
    )
    reviews = Prefetch("reviews", queryset=Review.objects.select_related("reviewer"))
    requests = list(
        StageChangeRequest.objects.filter(model_id=version.model_id)
        .pending()
        .exclude(kind=RequestKind.STAGE)
        .for_listing()
        .prefetch_related(reviews)
    )
    pending = {request.alias_name: request for request in requests}
    for alias in aliases:
        alias.here = alias.version_id == version.pk
        alias.pending_request = pending.get(alias.name)
        # Who may act at once, and who must ask: a protected alias moves by an org admin.
        alias.direct = access.write and (access.admin or not alias.protected)
    for request in requests:
        mark_review_controls(request, access, user)
    return {
        "aliases": [alias for alias in aliases if alias.here],
        "model_aliases": aliases,
        "alias_requests": [r for r in requests if r.version_id == version.pk],
        "alias_form": AliasForm(),
    }


def mark_review_controls(request: StageChangeRequest, access: Access, user) -> None:
    """Whether `user` is offered to review or cancel the pending request (display only)."""
    reviewed = any(review.reviewer_id == user.pk for review in request.reviews.all())
    request.can_review = access.approve and request.requester_id != user.pk and not reviewed
    request.can_cancel = request.requester_id == user.pk or access.admin


def _aliases_url(version: ModelVersion) -> str:
    return version_url(version) + "#aliases"


@login_required
@require_POST
@domain_errors
def alias_set_view(request: HttpRequest, org: str, model: str, number: int) -> HttpResponse:
    version = get_version_for_user(request.user, org, model, number, need="write")
    form = AliasForm(request.POST)
    if not form.is_valid():
        raise Invalid(first_error(form))
    alias = alias_set(
        actor=request.user,
        model=version.model,
        name=form.cleaned_data["name"],
        version=version,
        comment=form.cleaned_data["comment"],
    )
    messages.success(request, f"@{alias.name} points at version {version.number}.")
    return redirect(_aliases_url(version))


@login_required
@require_POST
@domain_errors
def alias_remove_view(request: HttpRequest, org: str, model: str, number: int) -> HttpResponse:
    version = get_version_for_user(request.user, org, model, number, need="write")
    form = AliasForm(request.POST)
    if not form.is_valid():
        raise Invalid(first_error(form))
    name = form.cleaned_data["name"]
    alias_remove(
        actor=request.user, model=version.model, name=name, comment=form.cleaned_data["comment"]
    )
    messages.success(request, f"@{name} removed.")
    return redirect(_aliases_url(version))


@login_required
@require_POST
@domain_errors
def alias_request_view(request: HttpRequest, org: str, model: str, number: int) -> HttpResponse:
    """Ask reviewers to point a (protected) alias at this version, or to remove it."""
    version = get_version_for_user(request.user, org, model, number, need="write")
    form = AliasRequestForm(request.POST)
    if not form.is_valid():
        raise Invalid(first_error(form))
    move = form.cleaned_data["action"] == "move"
    change = alias_request_create(
        actor=request.user,
        model=version.model,
        name=form.cleaned_data["name"],
        version=version if move else None,
        comment=form.cleaned_data["comment"],
    )
    what = f"pointing @{change.alias_name} at version {version.number}"
    if not move:
        what = f"removing @{change.alias_name}"
    messages.success(request, f"Requested {what} (request #{change.pk}); reviewers are asked.")
    return redirect(_aliases_url(version))


@login_required
@require_GET
@domain_errors
def version_by_alias(
    request: HttpRequest, org: str, model: str, alias: str, rest: str = ""
) -> HttpResponse:
    """`.../versions/@champion/...`: the same page of the version the alias points at now
    (404 as for the model, unless the user may view it)."""
    version = get_version_by_ref(request.user, org, f"{model}@{alias}")
    url = version_url(version) + quote(rest, safe="/")
    if request.META.get("QUERY_STRING"):
        url += "?" + request.META["QUERY_STRING"]
    return redirect(url)
