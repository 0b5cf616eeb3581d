"""Python client for Modelvault, the self-hosted model registry (SPEC 4.3).

from modelvault import Client
from modelvault.lock import Open, Redact, Closed
from modelvault.stage_change import Development, Staging, Production, Archived
"""

from modelvault.client import Client, Flag, ModelVersion, RegisteredModel, StageRequest
from modelvault.errors import (
    ChecksumMismatch,
    Conflict,
    InvalidRequest,
    LockedError,
    ModelvaultError,
    NotFound,
    PermissionDenied,
    ServerError,
    TooLarge,
    Unauthenticated,
)

__version__ = "0.1.0"

__all__ = [
    "ChecksumMismatch",
    "Client",
    "Conflict",
    "Flag",
    "InvalidRequest",
    "LockedError",
    "ModelVersion",
    "ModelvaultError",
    "NotFound",
    "PermissionDenied",
    "RegisteredModel",
    "ServerError",
    "StageRequest",
    "TooLarge",
    "Unauthenticated",
]
