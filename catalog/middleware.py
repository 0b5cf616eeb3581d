"""Refuse, before any page's view, a URL that no database could store: a NUL or a lone
surrogate in its path or query would reach PostgreSQL as a DataError, a 500. The answer is
the 400 page. The API answers these itself, in its JSON (api.urls)."""

from collections.abc import Callable

from django.core.exceptions import BadRequest
from django.http import HttpRequest, HttpResponse

from registry.errors import Invalid
from registry.validation import storable

API_PREFIX = "/api/"


class RefuseUnstorableURLs:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path_info.startswith(API_PREFIX):
            query = [text for key, values in request.GET.lists() for text in (key, *values)]
            try:
                for text in (request.path_info, *query):
                    storable("the URL", text)
            except Invalid as exc:
                raise BadRequest(exc.message) from exc
        return self.get_response(request)
