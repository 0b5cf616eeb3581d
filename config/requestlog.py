"""One JSON log line per request, and a request id that follows the work it starts (SPEC 5).

- Each request gets an id: the caller's `X-Request-ID` when it is a sane token (a proxy or
  load balancer usually sets one), else a new one. The response carries it back.
- While the request runs, every log record carries the id (RequestIdFilter); the Celery
  tasks it enqueues carry it in a message header (config/celery.py), and the worker's log
  records of those tasks carry it too.
- When the view has answered, one line goes to the `modelvault.request` logger: method,
  path, route, status, duration, user and the response's size when known. A streamed
  download is logged when its response starts, not when its last byte leaves.

`LOG_FORMAT=json` (the default) writes every log record as one JSON object per line;
`LOG_FORMAT=text` writes plain lines for a terminal.
"""

import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime

from django.core.signals import request_finished
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse

HEADER = "X-Request-ID"
# A caller's id is kept when it is short and made of token characters only: it goes into
# log lines and a response header, so nothing that could forge either gets in.
_SANE = re.compile(r"[A-Za-z0-9._:-]{1,128}")

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
log = logging.getLogger("modelvault.request")


def new_request_id(given: str | None = None) -> str:
    return given if given and _SANE.fullmatch(given) else uuid.uuid4().hex


class RequestLog:
    """Middleware: sets the request id, answers with it, and logs the request's line."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        rid = new_request_id(request.headers.get(HEADER))
        # Kept until the response is closed (forget_request_id): Django logs a 4xx or 5xx
        # after the middleware has answered, and a streamed body is sent after that.
        request_id.set(rid)
        start = time.perf_counter()
        response = self.get_response(request)
        response[HEADER] = rid
        match = getattr(request, "resolver_match", None)
        # The API's token user (request.auth), else the session's.
        user = getattr(request, "auth", None) or getattr(request, "user", None)
        size = None if response.streaming else len(response.content)
        log.info(
            "%s %s %s",
            request.method,
            request.path,
            response.status_code,
            extra={
                "http": {
                    "method": request.method,
                    "path": request.path,
                    "route": match.route if match is not None else None,
                    "status": response.status_code,
                    "duration_ms": round((time.perf_counter() - start) * 1000, 2),
                    "bytes": size if size is not None else response.get("Content-Length"),
                    "user": user.get_username() if user and user.is_authenticated else None,
                }
            },
        )
        return response


@receiver(request_finished)
def forget_request_id(**kwargs) -> None:
    request_id.set(None)


class RequestIdFilter(logging.Filter):
    """Adds `request_id` (or None) to every record, so any formatter may show it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON: time (UTC), level, logger, message, request id, and the
    request's fields (`http`) or an exception's traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        if hasattr(record, "http"):
            line["http"] = record.http
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)
