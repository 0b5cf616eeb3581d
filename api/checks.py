"""`check --deploy`: the failed-token counts (api/throttle.py) must be shared by every server
process, which a per-process cache is not."""

from typing import Any

from django.conf import settings
from django.core import checks

PER_PROCESS = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
)


@checks.register(checks.Tags.security, deploy=True)
def check_shared_cache(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    if settings.CACHES["default"]["BACKEND"] not in PER_PROCESS:
        return []
    return [
        checks.Warning(
            "The cache is kept per process: each server process counts failed API tokens on "
            "its own, so an address gets the limit once per process.",
            hint="Set CACHE_URL to a Redis database of its own (docs/operations.md).",
            id="api.W001",
        )
    ]
