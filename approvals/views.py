"""Review pages: the global pending-approvals queue, the user's own requests, and approve /
reject / cancel."""

from collections.abc import Callable

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from approvals.forms import ReviewForm
from approvals.models import StageChangeRequest
from approvals.services import request_approve, request_cancel, request_reject
from catalog.errors import back_url, domain_errors
from catalog.forms import first_error
from registry.errors import Invalid, NotFound


@login_required
@require_GET
def pending_approvals(request: HttpRequest) -> HttpResponse:
    queue = StageChangeRequest.objects.reviewable_by(request.user).for_listing()
    page = Paginator(queue, 50).get_page(request.GET.get("page"))
    return render(request, "approvals/pending.html", {"page": page})


@login_required
@require_GET
def my_requests(request: HttpRequest) -> HttpResponse:
    """The stage and alias requests the user filed, newest first, with their status (of
    models they may still view)."""
    mine = (
        StageChangeRequest.objects.visible_to(request.user)
        .filter(requester=request.user)
        .for_listing()
        .order_by("-created_at", "-pk")
    )
    page = Paginator(mine, 50).get_page(request.GET.get("page"))
    return render(request, "approvals/mine.html", {"page": page})


def _fetch(user, pk: int) -> StageChangeRequest:
    """A request of a model the user may view; the service checks the rest."""
    found = StageChangeRequest.objects.visible_to(user).filter(pk=pk).first()
    if found is None:
        raise NotFound(f"request #{pk} not found")
    return found


def _review(request: HttpRequest, pk: int, service: Callable, done: str) -> HttpResponse:
    change = _fetch(request.user, pk)
    form = ReviewForm(request.POST)
    if not form.is_valid():
        raise Invalid(first_error(form))
    service(actor=request.user, request=change, comment=form.cleaned_data["comment"])
    messages.success(request, f"Request #{change.pk} {done}.")
    return HttpResponseRedirect(back_url(request))


@login_required
@require_POST
@domain_errors
def request_approve_view(request: HttpRequest, pk: int) -> HttpResponse:
    return _review(request, pk, request_approve, "approved")


@login_required
@require_POST
@domain_errors
def request_reject_view(request: HttpRequest, pk: int) -> HttpResponse:
    return _review(request, pk, request_reject, "rejected")


@login_required
@require_POST
@domain_errors
def request_cancel_view(request: HttpRequest, pk: int) -> HttpResponse:
    return _review(request, pk, request_cancel, "cancelled")
