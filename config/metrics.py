"""Prometheus metrics at `/metrics` (SPEC 5), with prometheus_client.

Series:
- `modelvault_http_request_duration_seconds` (histogram): every request but the probes',
  by method, route (the URL pattern, so that the series stay few) and status class;
- `modelvault_upload_bytes_total` (counter): bytes of artifacts stored through the API;
- `modelvault_outbox_lag_seconds` (gauge): the age of the oldest activity event that should
  be dispatched and is not yet (0 when none): what a broker outage or a stopped worker
  leaves behind, within the sweep's window;
- `modelvault_deliveries` (gauge): notification deliveries by status (pending, failed, sent).

The last two are read from the database at each scrape, by the process that answers it.
Under gunicorn, each worker keeps its own counts: with PROMETHEUS_MULTIPROC_DIR set (as
gunicorn.conf.py sets it), they are written there and summed at each scrape.

`/metrics` is not public: it answers a bearer token equal to METRICS_TOKEN when one is set,
else only callers on this host (loopback, and not forwarded by a proxy); anyone else gets
404, as if it did not exist.
"""

import hmac
import ipaddress
import os
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Exists, OuterRef
from django.http import HttpRequest, HttpResponse, HttpResponseNotFound
from django.utils import timezone
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from config.health import HEALTH, READY

PATH = "/metrics"
# The outbox sweep's window (notifications.services.outbox_sweep): older events are never
# dispatched, so they are no lag.
OUTBOX_WINDOW = timedelta(days=7)

REQUEST_SECONDS = Histogram(
    "modelvault_http_request_duration_seconds",
    "Time to answer a request (until the response starts), by route.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
UPLOAD_BYTES = Counter(
    "modelvault_upload_bytes_total", "Bytes of artifacts stored through the API."
)


class RegistryCollector(Collector):
    """What the database says at scrape time: the outbox's lag and the deliveries."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from notifications.models import DISPATCHED_VERBS, Delivery, DeliveryStatus, Dispatch
        from registry.models import ActivityEvent

        now = timezone.now()
        oldest = (
            ActivityEvent.objects.filter(
                verb__in=sorted(DISPATCHED_VERBS), created_at__gte=now - OUTBOX_WINDOW
            )
            .filter(~Exists(Dispatch.objects.filter(event_id=OuterRef("pk"))))
            .order_by("created_at")
            .values_list("created_at", flat=True)
            .first()
        )
        lag = GaugeMetricFamily(
            "modelvault_outbox_lag_seconds",
            "Age of the oldest activity event not yet dispatched to notifications.",
        )
        lag.add_metric([], (now - oldest).total_seconds() if oldest else 0.0)
        yield lag
        counts = dict(Delivery.objects.order_by().values_list("status").annotate(n=Count("*")))
        deliveries = GaugeMetricFamily(
            "modelvault_deliveries", "Notification deliveries by status.", labels=["status"]
        )
        for status in DeliveryStatus.values:
            deliveries.add_metric([status], counts.get(status, 0))
        yield deliveries


def _allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        return hmac.compare_digest(given.encode(), token.encode())
    # Without a token, a scraper on this host only: a request a proxy forwarded (on this host
    # too, its address is loopback) says so in X-Forwarded-For, and is refused.
    if "X-Forwarded-For" in request.headers:
        return False
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not _allowed(request):
        return HttpResponseNotFound("Not Found", content_type="text/plain")
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(REQUEST_SECONDS)
        registry.register(UPLOAD_BYTES)
    registry.register(RegistryCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


class RequestMetrics:
    """Middleware: answers /metrics, and times every other request but the probes'."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info == PATH:
            return metrics_view(request)
        start = time.perf_counter()
        response = self.get_response(request)
        if request.path_info not in (HEALTH, READY):
            match = getattr(request, "resolver_match", None)
            REQUEST_SECONDS.labels(
                request.method,
                match.route if match is not None else "unmatched",
                f"{response.status_code // 100}xx",
            ).observe(time.perf_counter() - start)
        return response
