"""Failed bearer tokens per client address: API_TOKEN_FAILURE_LIMIT failures within
API_TOKEN_FAILURE_WINDOW seconds refuse the address's bearer requests for that long, with
429 and Retry-After, before any token is looked up. A valid token from another address is
not concerned.

The counts live in the cache (settings.CACHES): Redis (CACHE_URL) when several processes
serve, so that all of them count together. `add` and `incr` are atomic there (SET NX, INCR)
and in the per-process memory cache, so each of a burst of parallel failures is counted
once, and exactly one of them starts the block. A cache that does not answer is logged and
skipped: the API keeps serving, unthrottled, rather than refusing everybody.
"""

import logging
import math
import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, JsonResponse

from api.errors import error_response

security_log = logging.getLogger("modelvault.security")


class TokenThrottled(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"retry after {retry_after} s")
        self.retry_after = retry_after


def _keys(address: str | None) -> tuple[str, str]:
    who = address or "unknown"
    return f"api-token-failures:{who}", f"api-token-blocked:{who}"


def refuse_if_blocked(address: str | None) -> None:
    """Raise TokenThrottled while the address is blocked."""
    _, blocked_key = _keys(address)
    try:
        until = cache.get(blocked_key)
    except Exception:  # the cache's own errors (Redis down): serve unthrottled
        security_log.warning("token throttle: the cache does not answer", exc_info=True)
        return
    if until is not None:
        wait = math.ceil(until - time.time())
        if wait > 0:
            raise TokenThrottled(wait)


def failure_record(address: str | None) -> None:
    """Count one failed token from `address`; the failure that reaches the limit blocks the
    address for one window."""
    window = settings.API_TOKEN_FAILURE_WINDOW
    count_key, blocked_key = _keys(address)
    try:
        # The window opens with its first failure: add() sets the count only where none is.
        cache.add(count_key, 0, timeout=window)
        try:
            count = cache.incr(count_key)
        except ValueError:  # the window closed between add() and incr(): open another
            cache.add(count_key, 0, timeout=window)
            count = cache.incr(count_key)
        if count >= settings.API_TOKEN_FAILURE_LIMIT and cache.add(
            blocked_key, time.time() + window, timeout=window
        ):
            security_log.warning(
                "API tokens blocked: address=%s failures=%d window=%ds", address, count, window
            )
    except Exception:  # the cache's own errors (Redis down): serve unthrottled
        security_log.warning("token throttle: the cache does not answer", exc_info=True)


def install(api) -> None:
    @api.exception_handler(TokenThrottled)
    def throttled(request: HttpRequest, exc: TokenThrottled) -> JsonResponse:
        response = error_response(
            429,
            f"too many failed API tokens from your address: try again in {exc.retry_after} s",
            code="throttled",
            details={"retry_after": exc.retry_after},
        )
        response["Retry-After"] = str(exc.retry_after)
        return response
