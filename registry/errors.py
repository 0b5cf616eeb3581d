"""The typed domain errors. Each surface maps them in one place (SPEC 4.2 codes)."""

from typing import Any


class RegistryError(Exception):
    code = "invalid"
    status = 400

    def __init__(self, message: str, *, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}


class Invalid(RegistryError):
    code, status = "invalid", 400


class Forbidden(RegistryError):
    code, status = "forbidden", 403


class NotFound(RegistryError):
    code, status = "not_found", 404


class Conflict(RegistryError):
    code, status = "conflict", 409


class TooLarge(RegistryError):
    code, status = "too_large", 413


class Locked(RegistryError):
    code, status = "locked", 423


class Unavailable(RegistryError):
    """A part the server needs is missing or not answering (not the caller's fault)."""

    code, status = "unavailable", 503
