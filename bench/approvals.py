"""Approval benchmarks (issue 3): approve-to-applied latency, and the global pending queue
with 10,000 requests, whose query count must not grow with the number of requests.

`run(results)` expects django.setup() done, migrations applied and the demo cast created
(registry.demo.ensure_cast), on a throwaway database: it adds models and requests to it.
"""

import statistics
import sys
import time
from typing import Any

CYCLES = 200
QUEUE_SIZES = (100, 10_000)
PAGE = 50
LISTINGS = 20  # the first page is listed this many times at each size; the median is kept
MODELS = 20  # the queued requests are spread over this many models

TITLES = {
    "approve_to_applied": "approve to applied (SQLite)",
    "pending_queue": "pending queue, first page of 50",
}
TARGETS = {
    "approve_to_applied": "figure only",
    "pending_queue": "queries at 10,000 == queries at 100",
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def bench_approve_to_applied(cast) -> dict[str, Any]:
    """CYCLES stage changes, each requested by alice and approved by bob (one approval
    required): the time of the approve call, which reviews and applies in one transaction."""
    from approvals.services import request_approve, request_create
    from registry.demo import ensure_shared_model
    from registry.models import ModelVersion, Stage
    from registry.services.versions import version_create

    model = ensure_shared_model(cast, "bench-approvals")
    times = []
    for n in range(CYCLES):
        version = version_create(actor=cast.alice, model=model, metrics={"auc": 0.8})
        stage = Stage.PRODUCTION if n % 2 else Stage.STAGING
        request = request_create(
            actor=cast.alice,
            version=version,
            to_stage=stage,
            archive_existing=stage == Stage.PRODUCTION,
            comment="benchmark",
        )
        started = time.perf_counter()
        request_approve(actor=cast.bob, request=request, comment="ok")
        times.append(time.perf_counter() - started)
        assert ModelVersion.objects.get(pk=version.pk).stage == stage
    cuts = statistics.quantiles(times, n=100)
    return {
        "cycles": CYCLES,
        "median_ms": _ms(statistics.median(times)),
        "p95_ms": _ms(cuts[94]),
        "target": TARGETS["approve_to_applied"],
        "met": None,
    }


def _fill_queue(cast, models, versions_done: int, total: int) -> None:
    """Pending requests by alice up to `total`, one per new version.

    Rows are bulk-created: registering 10,000 versions through the services would take
    minutes and measure version_create, not the queue. What is measured, the read, sees
    rows exactly as the services write them.
    """
    from django.db import transaction

    from approvals.models import RequestKind, RequestStatus, StageChangeRequest
    from registry.models import Branch, ModelVersion, Stage, VersionSequence

    branches = {b.model_id: b for b in Branch.objects.filter(model__in=models, name=Branch.MAIN)}
    sequences = {s.pk: s for s in VersionSequence.objects.filter(model__in=models)}
    versions, requests = [], []
    for i in range(versions_done, total):
        model = models[i % len(models)]
        sequence = sequences[model.pk]
        sequence.last_number += 1
        version = ModelVersion(
            model=model,
            number=sequence.last_number,
            digest=f"sha256:{i:064x}",
            branch=branches[model.pk],
            lock_level="open",
            created_by=cast.alice,
        )
        versions.append(version)
        requests.append(
            StageChangeRequest(
                kind=RequestKind.STAGE,
                model=model,
                version=version,
                from_stage=Stage.UNASSIGNED,
                to_stage=Stage.STAGING,
                skips=True,
                comment=f"request {i}",
                requester=cast.alice,
                status=RequestStatus.PENDING,
                required_approvals=1,
            )
        )
    with transaction.atomic():
        for sequence in sequences.values():
            sequence.save(update_fields=["last_number"])
        ModelVersion.objects.bulk_create(versions, batch_size=1000)
        StageChangeRequest.objects.bulk_create(requests, batch_size=1000)


def _list_first_page(user) -> tuple[float, int, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from approvals.models import StageChangeRequest

    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        page = list(StageChangeRequest.objects.reviewable_by(user).for_listing()[:PAGE])
        # What a queue page shows of each row: no query may hide behind an attribute.
        rendered = [
            f"{r} {r.model.org.slug} {r.version.branch.name} {r.requester} {r.approvals}"
            for r in page
        ]
        seconds = time.perf_counter() - started
    return seconds, len(queries), len(rendered)


def bench_pending_queue(cast) -> dict[str, Any]:
    """bob's queue (approve on every model here, none of the requests his own) with 100,
    then 10,000 pending requests: time and queries to list the first page of 50."""
    from approvals.models import StageChangeRequest
    from registry.demo import ensure_shared_model

    models = [ensure_shared_model(cast, f"bench-queue-{i:02d}") for i in range(MODELS)]
    figure: dict[str, Any] = {"page": PAGE}
    done = 0
    for size in QUEUE_SIZES:
        _fill_queue(cast, models, done, size)
        done = size
        runs = [_list_first_page(cast.bob) for _ in range(LISTINGS)]
        queries = {r[1] for r in runs}
        assert len(queries) == 1 and all(r[2] == PAGE for r in runs)
        started = time.perf_counter()
        count = StageChangeRequest.objects.reviewable_by(cast.bob).count()
        count_seconds = time.perf_counter() - started
        figure[f"at_{size}"] = {
            "pending": count,
            "queries": queries.pop(),
            "median_ms": _ms(statistics.median(r[0] for r in runs)),
            "count_ms": _ms(count_seconds),
        }
        log(
            f"  pending queue at {size}: {figure[f'at_{size}']['queries']} queries, "
            f"first page {figure[f'at_{size}']['median_ms']} ms, "
            f"count {figure[f'at_{size}']['count_ms']} ms"
        )
    small, large = (figure[f"at_{size}"] for size in QUEUE_SIZES)
    figure["target"] = TARGETS["pending_queue"]
    figure["met"] = small["queries"] == large["queries"]
    return figure


def describe(name: str, figure: dict[str, Any]) -> str:
    if name == "approve_to_applied":
        return (
            f"median {figure['median_ms']:.2f} ms, p95 {figure['p95_ms']:.2f} ms "
            f"over {figure['cycles']} request + approve cycles"
        )
    small, large = (figure[f"at_{size}"] for size in QUEUE_SIZES)
    return (
        f"{small['queries']} query / {small['median_ms']:.2f} ms at {small['pending']}, "
        f"{large['queries']} query / {large['median_ms']:.2f} ms at {large['pending']} "
        f"(count {large['count_ms']:.1f} ms)"
    )


def run(results: dict) -> None:
    """Add the approval figures to `results` (name -> figure, with target and met)."""
    from registry.demo import ensure_cast

    cast = ensure_cast(passwords=False)
    log(f"approve to applied, {CYCLES} cycles ...")
    results["approve_to_applied"] = bench_approve_to_applied(cast)
    log(f"pending queue at {' and '.join(f'{n:,}' for n in QUEUE_SIZES)} requests ...")
    results["pending_queue"] = bench_pending_queue(cast)
    for name in ("approve_to_applied", "pending_queue"):
        log(f"  {TITLES[name]}: {describe(name, results[name])}")
