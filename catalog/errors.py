"""The one place where the web UI maps domain errors (STYLE.md: each surface maps them once).

NotFound is a 404 page. Any other refusal (Forbidden, Locked, Conflict, Invalid, ...) of a
form post becomes a message on the page the form came from (post/redirect/get); of a GET,
a 403 page, or the 503 page for Unavailable (artifact storage missing). Nothing becomes a
500. The registration pages, which keep what was typed, show a refusal on their form instead
(shown_on_form).
"""

from collections.abc import Callable
from functools import wraps

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.forms import Form
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from config.errors import unavailable_page
from registry.errors import NotFound, RegistryError, Unavailable


def back_url(request: HttpRequest) -> str:
    """Where a form post returns to: its `next` field or the referring page, if on this site."""
    for candidate in (request.POST.get("next"), request.META.get("HTTP_REFERER")):
        if candidate and url_has_allowed_host_and_scheme(
            candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            return candidate
    return reverse("catalog:home")


def domain_errors(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except NotFound as exc:
            raise Http404(exc.message) from exc
        except RegistryError as exc:
            if request.method != "POST":
                if isinstance(exc, Unavailable):
                    return unavailable_page(request, exc.message)
                raise PermissionDenied(exc.message) from exc
            messages.error(request, exc.message)
            return HttpResponseRedirect(back_url(request))

    return wrapper


def shown_on_form(form: Form, exc: RegistryError) -> int:
    """A refusal of a page that shows its form again (registering a model or a version):
    the message goes on the form, whose inputs stay as they were typed; the status to
    answer with is the refusal's."""
    form.add_error(None, exc.message)
    return exc.status
