"""Refuse, before any view, a URL that no database could store: a NUL or a lone surrogate in
its path or its query would reach PostgreSQL as a DataError, a 500. The answer is 400: the
API's error JSON under /api/, MLflow's under /mlflow/, the 400 page elsewhere."""

from collections.abc import Callable

from django.core.exceptions import BadRequest
from django.http import HttpRequest, HttpResponse

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
