"""`/healthz` and `/readyz` for load balancers and orchestrators (SPEC 5).

- `/healthz`: liveness. The process answers; no I/O at all.
- `/readyz`: readiness. The database answers a query, the broker (when one is configured)
  accepts a connection, and the artifact storage is there (the folder writable, or the
  bucket reachable). 200 when all are, else 503; each check says how long it took and, when
  it failed, why. The server's version is in both answers.

Answered by the first middleware, before host validation and the HTTPS redirect: a probe
comes by the node's own address, over plain HTTP, from inside the network. Nothing else is
said than what a probe needs, and nothing is cached: each probe checks anew.
"""

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse

from config.version import VERSION

HEALTH, READY = "/healthz", "/readyz"
# How long the broker may take to accept a connection before the node counts as unready.
BROKER_TIMEOUT = 2.0


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _broker() -> None:
    from config.celery import app

    with app.connection_for_write(settings.CELERY_BROKER_URL) as conn:
        conn.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT)
        conn.default_channel  # noqa: B018 (opening the channel is what talks to the broker)


def _storage() -> None:
    from registry.storage import artifact_storage

    storage = artifact_storage()
    if isinstance(storage, FileSystemStorage):
        # The folder is made at the first upload: until then its nearest existing parent
        # must let it be made.
        root = Path(storage.location)
        there = next(p for p in (root, *root.parents) if p.exists())
        if not there.is_dir() or not os.access(there, os.W_OK | os.X_OK):
            raise OSError(f"the artifact folder {root} cannot be written ({there} refuses)")
        return
    # django-storages' S3Storage: its boto3 resource and bucket name are public attributes.
    storage.connection.meta.client.head_bucket(Bucket=storage.bucket_name)


def checks() -> dict[str, Callable[[], None]]:
    found = {"database": _database, "storage": _storage}
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        found["broker"] = _broker
    return found


def readiness() -> tuple[bool, dict[str, Any]]:
    """(all ready, {check: {"ok", "ms"[, "error"]}})."""
    results: dict[str, Any] = {}
    for name, check in checks().items():
        start = time.perf_counter()
        try:
            check()
        except Exception as exc:  # any failure is "not ready", said with its reason
            result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
        else:
            result = {"ok": True}
        result["ms"] = round((time.perf_counter() - start) * 1000, 1)
        results[name] = result
    return all(r["ok"] for r in results.values()), results


class HealthChecks:
    """Answers /healthz and /readyz (GET or HEAD) itself; every other request goes on."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if path not in (HEALTH, READY):
            return self.get_response(request)
        if request.method not in ("GET", "HEAD"):
            response = JsonResponse({"error": "use GET or HEAD"}, status=405)
            response["Allow"] = "GET, HEAD"
            return response
        if path == HEALTH:
            response = JsonResponse({"status": "ok", "version": VERSION})
        else:
            ready, results = readiness()
            body = {"status": "ready" if ready else "unready", "version": VERSION}
            response = JsonResponse({**body, "checks": results}, status=200 if ready else 503)
        response["Cache-Control"] = "no-store"
        return response
