"""Modelvault benchmarks: `make bench` (python -m bench.run --scale N).

Runs in a throwaway VAR_DIR on the embedded default (SQLite, artifacts on the local
filesystem), prints each figure against its target and writes them to bench/results.json.
Figures, not pass/fail: a missed target is reported, and the exit status stays 0.

    --scale N      models to seed, 10 versions each (default 1000)
    --skip-large   skip the 1 GB peak-RSS ingest, for a quick run
    --skip-s3      skip the S3 figures (bench/s3.py: moto and gunicorn, 1 GB each way)
"""

import argparse
import contextlib
import hashlib
import io
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

MB = 1024 * 1024
REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results.json"

INGEST_SIZE = 256 * MB
LARGE_SIZE = 1024 * MB
VERSIONS_PER_MODEL = 10
EVENTS = 100_000
EAGER_VERSIONS = 500
# Runs of the 256 MB ingest and of its hashlib baseline; the median of each is reported.
INGEST_RUNS = 5

TARGETS = {
    "ingest_256mb": ("ratio", ">=", 0.5, "ingest / sha256 throughput >= 0.5"),
    "ingest_1gb_rss": ("rss_growth_mb", "<", 50, "peak RSS growth < 50 MB"),
    "version_create": ("median_ms", "<=", 5, "median <= 5 ms"),
    "version_create_eager": ("median_ms", None, None, "figure only"),
    "verify_activity": ("seconds", "<", 5, "< 5 s"),
}

# Environment that would point the run at real services or the checkout's own var/.
_NOT_INHERITED = (
    "DATABASE_URL",
    "ARTIFACT_STORAGE",
    "ARTIFACT_ROOT",
    "ARTIFACT_TMP_DIR",
    "CELERY_BROKER_URL",
    "EMAIL_HOST",
)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def write_random_file(path: Path, size: int, *, seed: int) -> None:
    """Incompressible bytes written chunk by chunk: never more than one chunk in memory."""
    rng = random.Random(seed)
    chunk = 8 * MB
    with path.open("wb") as out:
        left = size
        while left:
            n = min(chunk, left)
            out.write(rng.randbytes(n))
            left -= n


def sha256_file(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(MB):
            hasher.update(chunk)
    return hasher.hexdigest()


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def judge(name: str, figure: dict[str, Any]) -> dict[str, Any]:
    key, op, bound, text = TARGETS[name]
    if op is None:
        return {**figure, "target": text, "met": None}
    value = figure[key]
    met = {"<": value < bound, "<=": value <= bound, ">=": value >= bound}[op]
    return {**figure, "target": text, "met": met}


def bench_ingest(cast, sources: Path) -> dict[str, Any]:
    """256 MB through artifact_put (stream, hash, stage, place, rows, event) against a plain
    hashlib read of the same file; each run stores the bytes anew."""
    from registry.services.artifacts import artifact_delete, artifact_put
    from registry.services.registered_models import model_create
    from registry.services.versions import version_create

    path = sources / "ingest-256mb.bin"
    write_random_file(path, INGEST_SIZE, seed=256)
    model = model_create(actor=cast.alice, org=cast.acme, name="bench-ingest")
    version = version_create(actor=cast.alice, model=model)
    expected = sha256_file(path)  # also brings the file into the page cache for both sides
    hash_times, ingest_times = [], []
    for _ in range(INGEST_RUNS):
        seconds, digest = timed(lambda: sha256_file(path))
        assert digest == expected
        hash_times.append(seconds)

        def ingest():
            with path.open("rb") as source:
                return artifact_put(
                    actor=cast.alice, version=version, path="weights.bin", source=source
                )

        seconds, artifact = timed(ingest)
        assert artifact.blob_id == expected
        ingest_times.append(seconds)
        # Deleting the artifact collects its blob (eagerly, after commit): the next run
        # writes the bytes again instead of finding them stored.
        artifact_delete(actor=cast.alice, version=version, path="weights.bin")
    path.unlink()
    size_mb = INGEST_SIZE / MB
    ingest_mb_s = size_mb / statistics.median(ingest_times)
    sha256_mb_s = size_mb / statistics.median(hash_times)
    return {
        "size_mb": size_mb,
        "runs": INGEST_RUNS,
        "ingest_mb_s": round(ingest_mb_s, 1),
        "sha256_mb_s": round(sha256_mb_s, 1),
        "ratio": round(ingest_mb_s / sha256_mb_s, 3),
    }


def bench_large_rss(cast, sources: Path) -> dict[str, Any]:
    """1 GB ingested in a fresh process, which reports the growth of its peak RSS."""
    from registry.services.registered_models import model_create
    from registry.services.versions import version_create

    path = sources / "ingest-1gb.bin"
    write_random_file(path, LARGE_SIZE, seed=1024)
    model = model_create(actor=cast.alice, org=cast.acme, name="bench-large")
    version = version_create(actor=cast.alice, model=model)
    child = subprocess.run(
        [sys.executable, "-m", "bench.rss", str(version.pk), cast.alice.username, str(path)],
        cwd=REPO,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        check=False,
    )
    path.unlink()
    if child.returncode != 0:
        raise RuntimeError(f"the 1 GB ingest process failed:\n{child.stderr}")
    report = json.loads(child.stdout.strip().splitlines()[-1])
    maxrss_growth = (report["ru_maxrss_after_kb"] - report["ru_maxrss_before_kb"]) / 1024
    if report["rss_before_kb"] is not None and report["peak_rss_after_kb"] is not None:
        # The peak during the ingest over the resident set before it. ru_maxrss alone would
        # understate: it starts at this (large) process's RSS, inherited over fork and exec.
        growth = (report["peak_rss_after_kb"] - report["rss_before_kb"]) / 1024
        rss_before = report["rss_before_kb"] / 1024
        peak_after = report["peak_rss_after_kb"] / 1024
        method = "VmHWM after - VmRSS before" + (" (peak reset)" if report["peak_reset"] else "")
    else:
        growth = maxrss_growth
        rss_before = report["ru_maxrss_before_kb"] / 1024
        peak_after = report["ru_maxrss_after_kb"] / 1024
        method = "ru_maxrss after - before"
    return {
        "size_mb": LARGE_SIZE / MB,
        "rss_before_mb": round(rss_before, 1),
        "peak_rss_after_mb": round(peak_after, 1),
        "rss_growth_mb": round(growth, 1),
        "method": method,
        "ru_maxrss_before_mb": round(report["ru_maxrss_before_kb"] / 1024, 1),
        "ru_maxrss_after_mb": round(report["ru_maxrss_after_kb"] / 1024, 1),
        "ru_maxrss_growth_mb": round(maxrss_growth, 1),
        "ingest_mb_s": round(LARGE_SIZE / MB / report["seconds"], 1),
    }


@contextlib.contextmanager
def dispatch_deferred():
    """Leave each event in the outbox instead of handing it on after commit.

    With a broker, the after-commit hook only enqueues; without one (the embedded default)
    it dispatches inline. Deferring it (notifications' listener disconnected from the
    registry's signal) measures what a service call costs in the first case; the sweep
    would dispatch these events later, as after a broker outage.
    """
    from notifications.tasks import on_activity_committed
    from registry.signals import activity_committed

    activity_committed.disconnect(on_activity_committed, dispatch_uid="notifications")
    try:
        yield
    finally:
        activity_committed.connect(on_activity_committed, dispatch_uid="notifications")


def bench_version_create_eager(cast) -> dict[str, Any]:
    """version_create in the embedded default, notification dispatch inline (a watcher)."""
    from registry.demo import ensure_shared_model
    from registry.services.registered_models import model_watch
    from registry.services.versions import version_create

    model = ensure_shared_model(cast, "bench-eager")
    model_watch(actor=cast.carol, model=model)
    times = []
    for n in range(EAGER_VERSIONS):
        begin = time.perf_counter()
        version_create(actor=cast.alice, model=model, metrics={"auc": 0.8 + n / 10_000})
        times.append(time.perf_counter() - begin)
    return {
        "versions": len(times),
        "median_ms": round(statistics.median(times) * 1000, 2),
        "p95_ms": round(statistics.quantiles(times, n=100)[94] * 1000, 2),
    }


def bench_version_create(cast, scale: int) -> dict[str, Any]:
    """Seed `scale` models (alice, a plain member with write) with 10 versions each, timing
    every version_create, with notification dispatch deferred (dispatch_deferred)."""
    with dispatch_deferred():
        return _seed_versions(cast, scale)


def _seed_versions(cast, scale: int) -> dict[str, Any]:
    from registry.services.registered_models import model_create
    from registry.services.versions import version_create

    times: list[float] = []
    cpu_times: list[float] = []
    started = time.perf_counter()
    step = max(1, scale // 10)
    for i in range(scale):
        model = model_create(actor=cast.alice, org=cast.acme, name=f"model-{i:05d}")
        for n in range(VERSIONS_PER_MODEL):
            begin, begin_cpu = time.perf_counter(), time.process_time()
            version_create(
                actor=cast.alice,
                model=model,
                framework="sklearn",
                params={"max_depth": 3 + n, "learning_rate": 0.1, "n_estimators": 100 * n},
                metrics={"auc": 0.8 + n / 100, "f1": 0.7 + n / 200},
                code_version={"commit": f"{i:05x}{n:02x}"},
            )
            times.append(time.perf_counter() - begin)
            cpu_times.append(time.process_time() - begin_cpu)
        if (i + 1) % step == 0:
            log(f"  seeded {i + 1}/{scale} models ({time.perf_counter() - started:.0f} s)")
    cuts = statistics.quantiles(times, n=100)
    return {
        "versions": len(times),
        "models": scale,
        "median_ms": round(statistics.median(times) * 1000, 2),
        "p95_ms": round(cuts[94] * 1000, 2),
        # This process's CPU time per call (SQLite runs in-process): when it is well below
        # the wall-clock median, other load on the machine slowed the run.
        "median_cpu_ms": round(statistics.median(cpu_times) * 1000, 2),
        "seeding_seconds": round(time.perf_counter() - started, 1),
    }


def top_up_events(org, actor, target: int) -> int:
    """Append chained comment.added events until `org` has `target` events.

    Filler for the walk only (no Comment rows behind them): each link is hashed with
    registry.audit.link_hash exactly as event_record does, and the chain head moves with them,
    so verify_activity checks them like any other.
    """
    from django.db import transaction
    from django.utils import timezone

    from registry.audit import link_hash
    from registry.models import ActivityChain, ActivityEvent, RegisteredModel

    model = RegisteredModel.objects.filter(org=org).order_by("pk").first()
    with transaction.atomic():
        chain = ActivityChain.objects.select_for_update().get(org=org)
        seq, head = chain.seq, chain.head
        start = timezone.now()
        batch: list[ActivityEvent] = []
        while seq < target:
            seq += 1
            fields = {
                "org_id": org.pk,
                "seq": seq,
                "created_at": start + timedelta(microseconds=seq),
                "actor_id": actor.pk,
                "actor_name": actor.get_username(),
                "verb": "comment.added",
                "target_type": "comment",
                "target_id": str(seq),
                "target_repr": f"comment by {actor.get_username()} on {model.name}",
                "model_id": model.pk,
                "version_id": None,
                "changes": {},
                "data": {"comment": f"Benchmark comment {seq}: retrained on last week's data."},
            }
            digest = link_hash(head, fields)
            batch.append(ActivityEvent(prev_hash=head, hash=digest, **fields))
            head = digest
            if len(batch) == 5000:
                ActivityEvent.objects.bulk_create(batch)
                batch = []
        ActivityEvent.objects.bulk_create(batch)
        chain.seq, chain.head = seq, head
        chain.save(update_fields=["seq", "head"])
    return seq


def bench_verify_activity(cast) -> dict[str, Any]:
    from django.core.management import call_command

    from registry.models import ActivityEvent

    top_up_events(cast.acme, cast.bob, EVENTS)
    events = ActivityEvent.objects.count()
    out = io.StringIO()
    seconds, _ = timed(lambda: call_command("verify_activity", stdout=out))
    assert "acme: " in out.getvalue() and "broken" not in out.getvalue()
    return {"events": events, "seconds": round(seconds, 2), "output": out.getvalue().strip()}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    import sqlite3

    import django

    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "django": django.get_version(),
        "sqlite": sqlite3.sqlite_version,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def describe(name: str, figure: dict[str, Any]) -> str:
    if figure.get("skipped"):
        return "skipped (--skip-large)"
    if name == "ingest_256mb":
        return (
            f"ingest {figure['ingest_mb_s']:.0f} MB/s, sha256 {figure['sha256_mb_s']:.0f} MB/s, "
            f"ratio {figure['ratio']:.2f}"
        )
    if name == "ingest_1gb_rss":
        return (
            f"peak RSS +{figure['rss_growth_mb']:.1f} MB "
            f"({figure['rss_before_mb']:.0f} -> {figure['peak_rss_after_mb']:.0f} MB), "
            f"{figure['ingest_mb_s']:.0f} MB/s"
        )
    if name == "version_create_eager":
        return (
            f"median {figure['median_ms']:.2f} ms, p95 {figure['p95_ms']:.2f} ms over "
            f"{figure['versions']} versions, each e-mailing a watcher inline"
        )
    if name == "version_create":
        return (
            f"median {figure['median_ms']:.2f} ms (CPU {figure['median_cpu_ms']:.2f}), "
            f"p95 {figure['p95_ms']:.2f} ms over {figure['versions']} versions "
            "(dispatch deferred to the outbox)"
        )
    return f"{figure['seconds']:.2f} s over {figure['events']} events"


TITLES = {
    "ingest_256mb": "artifact ingest, 256 MB",
    "ingest_1gb_rss": "peak RSS, 1 GB ingest",
    "version_create": "version_create (SQLite)",
    "version_create_eager": "version_create, eager dispatch",
    "verify_activity": "verify_activity",
}


# Benchmarks of later surfaces, each a module with TITLES, describe(name, figure) and
# run(results), run in this order on the same throwaway database.
EXTRA_MODULES = ("bench.approvals", "bench.notifications", "bench.ui", "bench.s3")


def extras() -> list:
    import importlib

    return [importlib.import_module(name) for name in EXTRA_MODULES]


def table(figures: dict[str, dict[str, Any]]) -> str:
    rows = [("figure", "measured", "target", "met")]
    for name, figure in figures.items():
        met = "-" if figure.get("met") is None else ("yes" if figure["met"] else "NO")
        module = next((m for m in extras() if name in m.TITLES), None)
        if module is not None:
            title, measured = module.TITLES[name], module.describe(name, figure)
        else:
            title, measured = TITLES[name], describe(name, figure)
        rows.append((title, measured, figure["target"], met))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def configure(var_dir: Path) -> None:
    """The embedded default in a throwaway folder; must run before django.setup()."""
    for name in _NOT_INHERITED:
        os.environ.pop(name, None)
    os.environ["VAR_DIR"] = str(var_dir)
    os.environ.setdefault("SECRET_KEY", "bench-only-not-a-secret")
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"


def run(scale: int, skip_large: bool, var_dir: Path, skip_s3: bool = False) -> dict[str, Any]:
    import django

    django.setup()
    from django.core.management import call_command

    from registry.demo import ensure_cast

    info = machine()
    call_command("migrate", verbosity=0)
    cast = ensure_cast(passwords=False)
    sources = var_dir / "sources"
    sources.mkdir()
    started = time.perf_counter()
    figures: dict[str, dict[str, Any]] = {}

    log("artifact ingest, 256 MB ...")
    figures["ingest_256mb"] = judge("ingest_256mb", bench_ingest(cast, sources))
    if skip_large:
        target = TARGETS["ingest_1gb_rss"][3]
        figures["ingest_1gb_rss"] = {"skipped": True, "target": target, "met": None}
    else:
        log("peak RSS of a 1 GB ingest, in a fresh process ...")
        figures["ingest_1gb_rss"] = judge("ingest_1gb_rss", bench_large_rss(cast, sources))
    log(f"version_create: seeding {scale} models x {VERSIONS_PER_MODEL} versions ...")
    figures["version_create"] = judge("version_create", bench_version_create(cast, scale))
    log(f"version_create with inline notification dispatch, {EAGER_VERSIONS} versions ...")
    figures["version_create_eager"] = judge(
        "version_create_eager", bench_version_create_eager(cast)
    )
    log(f"verify_activity over {EVENTS} events ...")
    figures["verify_activity"] = judge("verify_activity", bench_verify_activity(cast))
    for module in extras():
        if skip_s3 and module.__name__ == "bench.s3":
            module.skip(figures)
        else:
            module.run(figures)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "scale": scale,
        "machine": {**info, "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
        "total_seconds": round(time.perf_counter() - started, 1),
        "figures": figures,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=int, default=1000, help="models, 10 versions each")
    parser.add_argument("--skip-large", action="store_true", help="skip the 1 GB RSS ingest")
    parser.add_argument("--skip-s3", action="store_true", help="skip the S3 figures")
    args = parser.parse_args(argv)
    if args.scale < 1:
        parser.error("--scale must be at least 1")
    var_dir = Path(tempfile.mkdtemp(prefix="modelvault-bench-"))
    try:
        configure(var_dir)
        results = run(args.scale, args.skip_large, var_dir, args.skip_s3)
    finally:
        shutil.rmtree(var_dir, ignore_errors=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    machine_info = results["machine"]
    print(
        f"Modelvault bench, {results['date']}: {machine_info['cpu_count']} CPUs, Python "
        f"{machine_info['python']}, Django {machine_info['django']}, SQLite "
        f"{machine_info['sqlite']}; scale {args.scale} ({results['total_seconds']} s; "
        f"load average {machine_info['load_average_at_start'][0]} at start, "
        f"{machine_info['load_average_at_end'][0]} at end)"
    )
    print(table(results["figures"]))
    print(f"Written to {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
