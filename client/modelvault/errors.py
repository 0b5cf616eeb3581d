"""Typed errors: each carries the server's message, code and details (SPEC 4.2)."""

from typing import Any

import httpx


class ModelvaultError(Exception):
    """Any refusal or failure; `message`, `code`, `status` and `details` say what happened."""

    status: int | None = None
    default_code = "error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        details: dict[str, Any] | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        if status is not None:
            self.status = status
        self.details = details or {}


class InvalidRequest(ModelvaultError):
    status, default_code = 400, "invalid"


class Unauthenticated(ModelvaultError):
    status, default_code = 401, "unauthenticated"


class PermissionDenied(ModelvaultError):
    status, default_code = 403, "forbidden"


class NotFound(ModelvaultError):
    status, default_code = 404, "not_found"


class Conflict(ModelvaultError):
    status, default_code = 409, "conflict"


class TooLarge(ModelvaultError):
    status, default_code = 413, "too_large"


class LockedError(ModelvaultError):
    status, default_code = 423, "locked"


class ServerError(ModelvaultError):
    """The server failed (5xx) or answered something this client does not understand."""

    default_code = "server_error"


class ChecksumMismatch(ModelvaultError):
    """A downloaded file's SHA-256 differs from the server's; the file was not kept."""

    default_code = "checksum_mismatch"

    def __init__(self, message: str, *, expected: str, actual: str):
        super().__init__(message, details={"expected": expected, "actual": actual})
        self.expected, self.actual = expected, actual


BY_STATUS: dict[int, type[ModelvaultError]] = {
    cls.status: cls
    for cls in (
        InvalidRequest,
        Unauthenticated,
        PermissionDenied,
        NotFound,
        Conflict,
        TooLarge,
        LockedError,
    )
}


def error_from_response(response: httpx.Response) -> ModelvaultError:
    """The typed error for a refused (and read) response, with the server's message."""
    code = message = None
    details: dict[str, Any] = {}
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        code = error.get("code") if isinstance(error.get("code"), str) else None
        message = error.get("message") if isinstance(error.get("message"), str) else None
        details = error.get("details") if isinstance(error.get("details"), dict) else {}
    if not message:
        text = response.text.strip()
        message = f"{response.status_code} {response.reason_phrase}".strip()
        if text and len(text) < 300:
            message = f"{message}: {text}"
    cls = BY_STATUS.get(response.status_code, ServerError)
    return cls(message, code=code, status=response.status_code, details=details)


def check(response: httpx.Response) -> None:
    if response.is_success:
        return
    if response.is_redirect:
        raise ModelvaultError(
            f"the server redirected to {response.headers.get('Location')}: check the URL",
            status=response.status_code,
        )
    raise error_from_response(response)
