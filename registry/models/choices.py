from django.db import models


class LockLevel(models.TextChoices):
    OPEN = "open", "Open"
    REDACT = "redact", "Redact"
    CLOSED = "closed", "Closed"

    @classmethod
    def rank(cls, level: str) -> int:
        return _LOCK_RANK[level]


_LOCK_RANK = {LockLevel.OPEN: 0, LockLevel.REDACT: 1, LockLevel.CLOSED: 2}


class Stage(models.TextChoices):
    UNASSIGNED = "unassigned", "Unassigned"
    DEVELOPMENT = "development", "Development"
    STAGING = "staging", "Staging"
    PRODUCTION = "production", "Production"
    ARCHIVED = "archived", "Archived"


class Visibility(models.TextChoices):
    ORGANIZATION = "organization", "Everyone in the organization"
    PRIVATE = "private", "Only those granted"


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"


class TokenScope(models.TextChoices):
    """What an API token may do (SPEC 4.6): read only, or read and change."""

    READ = "read", "read-only"
    WRITE = "write", "read-write"


class ModelPermission(models.TextChoices):
    """The three per-model permissions of SPEC 3.1, as guardian codenames."""

    VIEW = "view_registeredmodel", "view"
    WRITE = "write_registeredmodel", "write"
    APPROVE = "approve_registeredmodel", "approve"

    @classmethod
    def from_word(cls, word: str) -> "ModelPermission":
        for member in cls:
            if member.label == word:
                return member
        raise ValueError(word)
