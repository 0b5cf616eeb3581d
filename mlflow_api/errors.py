"""The one place where every failure of the MLflow-compatible API becomes MLflow's error JSON,
`{"error_code": ..., "message": ...}`, with a status MLflow's client reads without retrying.

MLflow's client raises an exception carrying `error_code` from any non-200 answer whose body
is that JSON. It retries 408, 429 and 5xx answers, so a refusal is never one of those:
INVALID_STATE, which MLflow's own server answers with 500, is a 409 here. What is worth
retrying is: too many wrong tokens (429) and a database busy with another writer (503), both
with Retry-After.
"""

from django.core.exceptions import SuspiciousOperation
from django.http import HttpResponse, JsonResponse

from api.throttle import TokenThrottled
from config.database import RETRY_AFTER, is_locked
from registry.errors import (
    Conflict,
    Forbidden,
    Invalid,
    Locked,
    NotFound,
    RegistryError,
    TooLarge,
    Unavailable,
)


class MlflowError(Exception):
    """A refusal with MLflow's code and the HTTP status sent with it."""

    def __init__(self, code: str, message: str, status: int):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def unauthenticated() -> MlflowError:
    return MlflowError(
        "UNAUTHENTICATED",
        "authentication required: set MLFLOW_TRACKING_TOKEN to a Modelvault API token",
        401,
    )


def endpoint_not_found(path: str) -> MlflowError:
    return MlflowError("ENDPOINT_NOT_FOUND", f"no MLflow endpoint at {path}", 404)


def already_exists(message: str) -> MlflowError:
    return MlflowError("RESOURCE_ALREADY_EXISTS", message, 400)


# Domain errors (registry/errors.py) as MLflow codes. A model the caller may not view is
# NotFound before anything else, so it is RESOURCE_DOES_NOT_EXIST here too. Conflict is the
# state of a row refusing the change (a pending request, a protected alias, a descendant);
# the callers that create or rename a model turn a taken name into RESOURCE_ALREADY_EXISTS.
DOMAIN = {
    NotFound: ("RESOURCE_DOES_NOT_EXIST", 404),
    Forbidden: ("PERMISSION_DENIED", 403),
    Invalid: ("INVALID_PARAMETER_VALUE", 400),
    Locked: ("INVALID_STATE", 409),
    Conflict: ("INVALID_STATE", 409),
    TooLarge: ("INVALID_PARAMETER_VALUE", 413),
    # A part of the server is missing (artifact storage's bucket): worth trying again later.
    Unavailable: ("TEMPORARILY_UNAVAILABLE", 503),
}


def error_response(code: str, message: str, status: int) -> JsonResponse:
    return JsonResponse({"error_code": code, "message": message}, status=status)


def response_for(exc: Exception) -> HttpResponse | None:
    """MLflow's answer to `exc`, or None for an exception that is not a refusal."""
    if isinstance(exc, MlflowError):
        return error_response(exc.code, exc.message, exc.status)
    if isinstance(exc, RegistryError):
        for kind, (code, status) in DOMAIN.items():
            if isinstance(exc, kind):
                return error_response(code, exc.message, status)
        return error_response("INVALID_PARAMETER_VALUE", exc.message, 400)
    if isinstance(exc, SuspiciousOperation):  # Django's refusal of a request (too many fields)
        return error_response("INVALID_PARAMETER_VALUE", "the request is malformed", 400)
    if is_locked(exc):  # SQLite busy with another writer: no fault of the request
        response = error_response(
            "TEMPORARILY_UNAVAILABLE", "the database is busy with other changes: try again", 503
        )
        response["Retry-After"] = str(RETRY_AFTER)
        return response
    if isinstance(exc, TokenThrottled):
        response = error_response(
            "REQUEST_LIMIT_EXCEEDED",
            f"too many failed API tokens from your address: try again in {exc.retry_after} s",
            429,
        )
        response["Retry-After"] = str(exc.retry_after)
        return response
    return None
