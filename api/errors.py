"""The one place where every failure becomes the error JSON of SPEC 4.2:
{"error": {"code", "message", "details"}}."""

from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import OperationalError
from django.http import Http404, HttpRequest, JsonResponse
from ninja.errors import AuthenticationError, HttpError, ValidationError

from config.database import RETRY_AFTER, is_locked
from registry.errors import RegistryError

CODES = {
    400: "invalid",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    423: "locked",
    500: "internal",
    503: "unavailable",
}


def error_response(
    status: int, message: str, *, code: str | None = None, details: dict[str, Any] | None = None
) -> JsonResponse:
    body = {"error": {"code": code or CODES.get(status, "invalid"), "message": message}}
    body["error"]["details"] = details or {}
    return JsonResponse(body, status=status)


def _field(loc: list[Any]) -> str:
    # ninja locates errors as ["body", "payload", "stage"] or ["query", "limit"].
    parts = [str(p) for p in loc if p not in ("body", "payload", "query", "path", "header")]
    return ".".join(parts) or "request"


def _validation_message(errors: list[dict[str, Any]]) -> str:
    messages = []
    for error in errors:
        field = _field(error.get("loc", []))
        if error.get("type") == "extra_forbidden":
            messages.append(f"{field} cannot be set here: it is read-only or unknown")
        else:
            messages.append(f"{field}: {error.get('msg', 'invalid value')}")
    return "; ".join(messages) or "the request is invalid"


def install(api) -> None:
    @api.exception_handler(RegistryError)
    def registry_error(request: HttpRequest, exc: RegistryError):
        return error_response(exc.status, exc.message, code=exc.code, details=exc.details)

    @api.exception_handler(ValidationError)
    def validation_error(request: HttpRequest, exc: ValidationError):
        errors = [
            {"loc": [str(p) for p in e.get("loc", [])], "type": e.get("type"), "msg": e.get("msg")}
            for e in exc.errors
        ]
        return error_response(400, _validation_message(errors), details={"errors": errors})

    @api.exception_handler(AuthenticationError)
    def unauthenticated(request: HttpRequest, exc: AuthenticationError):
        return error_response(
            401, "authentication required: send Authorization: Bearer <token>, or log in"
        )

    @api.exception_handler(HttpError)
    def http_error(request: HttpRequest, exc: HttpError):
        return error_response(exc.status_code, str(exc))

    @api.exception_handler(Http404)
    def not_found(request: HttpRequest, exc: Http404):
        return error_response(404, str(exc) or "not found")

    @api.exception_handler(RequestDataTooBig)
    def body_too_large(request: HttpRequest, exc: RequestDataTooBig):
        return body_too_large_response()

    @api.exception_handler(OperationalError)
    def database_busy(request: HttpRequest, exc: OperationalError):
        if not is_locked(exc):
            raise exc  # a failure of the server: Django's 500
        return database_busy_response()


def body_too_large_response() -> JsonResponse:
    """A body over DATA_UPLOAD_MAX_MEMORY_SIZE, refused before it is read (Django's
    RequestDataTooBig). Artifacts stream in through their own PUT, which has no such limit."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return error_response(
        413,
        f"the request body is larger than the limit of {limit} bytes; artifact files are "
        "uploaded with PUT .../versions/{number}/artifacts/{path}",
        details={"limit": limit},
    )


def database_busy_response() -> JsonResponse:
    response = error_response(
        503,
        f"the database is busy with other writes: try again in {RETRY_AFTER} seconds",
        details={"retry_after": RETRY_AFTER},
    )
    response["Retry-After"] = str(RETRY_AFTER)
    return response
