"""Refuse, before any view, a URL that no database could store: a NUL or a lone surrogate in
its path or its query would reach PostgreSQL as a DataError, a 500. The answer is 400: the
API's error JSON under /api/, MLflow's under /mlflow/, the 400 page elsewhere."""

from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import BadRequest
from django.http import Http404, HttpRequest, HttpResponse
from django.views import defaults

from api.errors import error_response
from mlflow_api.errors import error_response as mlflow_error_response
from registry.errors import Invalid
from registry.validation import storable

API_PREFIX = "/api/"
MLFLOW_PREFIX = "/mlflow/"


class RefuseUnstorableURLs:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        query = [text for key, values in request.GET.lists() for text in (key, *values)]
        try:
            for text in (request.path_info, *query):
                storable("the URL", text)
        except Invalid as exc:
            if request.path_info.startswith(API_PREFIX):
                return error_response(400, exc.message)
            if request.path_info.startswith(MLFLOW_PREFIX):
                return mlflow_error_response("INVALID_PARAMETER_VALUE", exc.message, 400)
            raise BadRequest(exc.message) from exc
        return self.get_response(request)


class ProductNotFoundPage:
    """Under DEBUG (`make run`) Django answers a 404 with its technical page; this answers
    with the product's own 404.html instead, as without DEBUG (DEBUG_TECHNICAL_404=true
    keeps Django's). Both kinds: a view's Http404 (process_exception) and a URL that
    matches no route (a 404 with no resolver match). The API and MLflow answer 404 in their
    JSON either way. Without DEBUG, Django itself renders 404.html: this does nothing."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    @staticmethod
    def _applies(request: HttpRequest) -> bool:
        return (
            settings.DEBUG
            and not settings.DEBUG_TECHNICAL_404
            and not request.path_info.startswith((API_PREFIX, MLFLOW_PREFIX))
        )

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            response.status_code == 404
            and request.resolver_match is None
            and self._applies(request)
        ):
            return defaults.page_not_found(request, Http404(request.path_info))
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, Http404) and self._applies(request):
            return defaults.page_not_found(request, exception)
        return None
