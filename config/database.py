"""The database's one passing failure. SQLite lets one writer in at a time; the others wait
up to the busy timeout (20 s, config/settings.py) and then fail with "database is locked".
That is no fault of the request: every surface answers it 503 with Retry-After (the API in
api/errors.py, everything else in config/errors.py)."""

from django.db import OperationalError

# Seconds a client is asked to wait before it tries again.
RETRY_AFTER = 5


def is_locked(exc: BaseException) -> bool:
    """Whether `exc` is SQLite's "database is locked" (or "database table is locked")."""
    return isinstance(exc, OperationalError) and "is locked" in str(exc)
