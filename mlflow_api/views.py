"""The HTTP side of the MLflow-compatible API: who is calling, which handler answers, and
MLflow's error JSON for every refusal (mlflow_api/errors.py), never an HTML page.

Each URL of mlflow_api/urls.py is `endpoint({method: handler})`. A handler takes a `Call`
(the caller, the org slug of the URL, the request's parameters) and returns the JSON body of
MLflow's response message, or a whole response (a download). Only Modelvault API tokens
authenticate (MLflow's client sends MLFLOW_TRACKING_TOKEN as `Authorization: Bearer`), so
there is no session and no CSRF question.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from api.auth import BearerToken
from mlflow_api.errors import endpoint_not_found, error_response, response_for, unauthenticated
from mlflow_api.params import Params

log = logging.getLogger(__name__)


@dataclass
class Call:
    request: HttpRequest
    user: Any
    org: str
    params: Params


Handler = Callable[..., dict[str, Any] | HttpResponseBase]


def authenticate(request: HttpRequest, *, changes: bool | None = None):
    """The user of the bearer token, through the REST API's own check (api/auth.py), which
    also counts failed tokens per address, refuses a blocked one (429), and a read-only token
    any request that `changes` (by default, any unsafe method)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthenticated()
    user = BearerToken().authenticate(request, token.strip(), changes=changes)
    if user is None:
        raise unauthenticated()
    return user


def _refused(exc: Exception, request: HttpRequest) -> HttpResponse:
    response = response_for(exc)
    if response is not None:
        return response
    # A defect, not a refusal: logged with its traceback, and still MLflow's JSON.
    log.exception("MLflow API: %s %s failed", request.method, request.path)
    return error_response("INTERNAL_ERROR", "the server failed to answer this request", 500)


def endpoint(
    handlers: dict[str, Handler], *, refusal: str = "", reads: bool = False
) -> Callable[..., HttpResponseBase]:
    """A view that answers the methods of `handlers`; any other method is refused (405) with
    `refusal` or a line naming the methods. `reads`: the endpoint changes nothing whatever
    its method (MLflow's client POSTs some reads), so a read-only token may call it."""

    @csrf_exempt
    def view(request: HttpRequest, org: str, **kwargs: Any) -> HttpResponseBase:
        handler = handlers.get(request.method or "")
        if handler is None:
            allowed = ", ".join(sorted(handlers))
            message = refusal or f"{request.path} accepts {allowed}, not {request.method}"
            response = error_response("ENDPOINT_NOT_FOUND", message, 405)
            response["Allow"] = allowed
            return response
        try:
            user = authenticate(request, changes=False if reads else None)
            call = Call(request, user, org, Params(request))
            result = handler(call, **kwargs)
        except Exception as exc:
            return _refused(exc, request)
        return result if isinstance(result, HttpResponseBase) else JsonResponse(result)

    return view


@csrf_exempt
def not_found(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    """Anything else under /mlflow/: MLflow's answer for an endpoint it does not have, which
    its client reads to try the next endpoint of a call that has several."""
    error = endpoint_not_found(request.path)
    return error_response(error.code, error.message, error.status)
