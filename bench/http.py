"""HTTP benchmark (issue 5): `make bench-http` (python -m bench.http).

Replays the MLflow baseline workload against gunicorn (2 workers) on PostgreSQL, over the
loopback: SCALE models x 10 versions registered through the API by 4 client threads with
keep-alive connections, then (one client, warm-up excluded) get model, list 50 models, a
version search by tag with 200 hits, the production versions of one model, and a 256 MB
artifact upload and download. The gunicorn workers' resident set is sampled throughout.

Figures, not pass/fail: a missed target is reported and the exit status stays 0. A missing
PostgreSQL is an error (exit 2). Results go to bench/results-http.json (`make bench` keeps
bench/results.json). The throwaway database, VAR_DIR and server are removed at the end,
also after a failure or Ctrl-C.

    --scale N            models, 10 versions each (default 1000)
    --worker-class W     gthread (gunicorn.conf.py's: the default) or sync
    --threads N          threads per gthread worker (default 2)
    --dispatch MODE      broker (Redis, no worker: the request only enqueues), eager (the
                         notification dispatch runs inline in the request), or auto
    --no-autoanalyze     on a server without autovacuum, leave the tables unanalysed during
                         the load (by default the bench stands in for autovacuum's analysis)
"""

import argparse
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.http_server import (
    ANALYZE_NAPTIME,
    ORG,
    WORKER_CLASSES,
    WORKERS,
    AutoAnalyze,
    BenchError,
    RssSampler,
    admin_connection,
    broker_answers,
    database_url,
    drop_database,
    flush_broker,
    free_port,
    log,
    log_tail,
    recreate_database,
    server_env,
    start_gunicorn,
    stop_gunicorn,
    wait_ready,
    workers_cpu_seconds,
)
from bench.http_workload import (
    CLIENTS,
    ITERATIONS,
    UPLOAD_RUNS,
    VERSIONS_PER_MODEL,
    WARMUP,
    bench_artifacts,
    bench_load,
    bench_production,
    bench_reads,
)

MB = 1024 * 1024
RESULTS = Path(__file__).resolve().parent / "results-http.json"

PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
DB_NAME = os.environ.get("BENCH_HTTP_DB", "modelvault_bench")
# Redis database for the broker mode: flushed before and after, so it must be the bench's own.
BROKER_URL = os.environ.get("BENCH_HTTP_BROKER_URL", "redis://127.0.0.1:6379/12")

UPLOAD_SIZE = 256 * MB

TARGETS = {
    "http_version_create": ("versions_per_s", ">=", 200, ">= 200 versions/s"),
    "http_production": (None, None, None, "figure only"),
    "http_get_model": ("p50_ms", "<=", 5, "p50 <= 5 ms"),
    "http_list_models": ("p50_ms", "<=", 15, "p50 <= 15 ms"),
    "http_tag_search": ("p50_ms", "<=", 15, "p50 <= 15 ms"),
    "http_tag_search_page": ("p50_ms", "<=", 15, "p50 <= 15 ms"),
    "http_production_versions": (None, None, None, "figure only"),
    "http_upload": ("mb_s", ">=", 500, ">= 500 MB/s"),
    "http_download": ("mb_s", ">=", 600, ">= 600 MB/s"),
    "http_worker_rss": ("max_mb", "<=", 150, "<= 150 MB"),
}

TITLES = {
    "http_version_create": "versions created, 4 clients",
    "http_production": "production: request + approve",
    "http_get_model": "get model",
    "http_list_models": "list 50 models",
    "http_tag_search": "search versions by tag, 200 hits",
    "http_tag_search_page": "same search, first page of 50",
    "http_production_versions": "production versions of one model",
    "http_upload": "upload",
    "http_download": "download",
    "http_worker_rss": "gunicorn worker RSS",
}


def judge(name: str, figure: dict[str, Any]) -> dict[str, Any]:
    key, op, bound, text = TARGETS[name]
    if op is None:
        return {**figure, "target": text, "met": None}
    value = figure[key]
    met = {"<=": value <= bound, ">=": value >= bound}[op]
    return {**figure, "target": text, "met": met}


# Set-up through the services, in this process.


def configure(env: dict[str, str]) -> None:
    """This process's Django on the bench database; must run before django.setup()."""
    os.environ.update(env)


def setup_org() -> dict[str, str]:
    """Org `bench`: `reviewer` (org admin, who approves) and `loader` (a member, who
    registers everything and so holds view, write and approve on the models it creates)."""
    import io

    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from registry.models import Role
    from registry.services.orgs import membership_set, org_create

    users = get_user_model().objects
    reviewer = users.create_user("reviewer", email="reviewer@example.com")
    loader = users.create_user("loader", email="loader@example.com")
    org = org_create(actor=None, slug=ORG, name="Benchmark", admin=reviewer)
    membership_set(actor=reviewer, org=org, user=loader, role=Role.MEMBER)
    tokens = {}
    for user in (loader, reviewer):
        out = io.StringIO()
        call_command(
            "create_api_token", user.username, name="bench-http", stdout=out, stderr=io.StringIO()
        )
        tokens[user.username] = out.getvalue().strip()
    return tokens


# Report.


def describe(name: str, figure: dict[str, Any]) -> str:
    if name == "http_version_create":
        post = figure["version_post"]
        return (
            f"{figure['versions_per_s']:.0f}/s ({figure['versions']} in {figure['seconds']} s; "
            f"POST p50 {post['p50_ms']:.1f} ms, p95 {post['p95_ms']:.1f} ms; server CPU "
            f"{figure['server_cpu_ms_per_version']:.1f} ms/version)"
        )
    if name == "http_production":
        return (
            f"{figure['versions']} versions; request p50 {figure['request_p50_ms']:.1f} ms, "
            f"approve p50 {figure['approve_p50_ms']:.1f} ms"
        )
    if name in ("http_upload", "http_download"):
        return (
            f"{figure['mb_s']:.0f} MB/s, {figure['size_mb']:.0f} MB (runs {figure['each_mb_s']}; "
            f"CPU s server {figure['server_cpu_s']}, client {figure['client_cpu_s']})"
        )
    if name == "http_worker_rss":
        return f"max {figure['max_mb']:.1f} MB (end {figure['rss_at_end_mb']})"
    return (
        f"p50 {figure['p50_ms']:.2f} ms, p95 {figure['p95_ms']:.2f} ms "
        f"(server CPU {figure['server_cpu_ms']:.2f} ms)"
    )


def table(figures: dict[str, dict[str, Any]]) -> str:
    rows = [("figure", "measured", "target", "met")]
    for name, figure in figures.items():
        met = "-" if figure.get("met") is None else ("yes" if figure["met"] else "NO")
        rows.append((TITLES[name], describe(name, figure), figure["target"], met))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def machine(pg_version: str) -> dict[str, Any]:
    from bench.run import cpu_model

    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "postgresql": pg_version,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def run(args: argparse.Namespace, var_dir: Path, cleanups: list[Callable[[], None]]) -> dict:
    admin_url = args.pg_url
    db_url = database_url(admin_url, DB_NAME)
    with admin_connection(admin_url) as conn:
        pg_version = conn.execute("SHOW server_version").fetchone()[0]
    broker = ""
    if args.dispatch in ("broker", "auto") and broker_answers(BROKER_URL):
        broker = BROKER_URL
    elif args.dispatch == "broker":
        raise BenchError(f"--dispatch broker needs Redis at {BROKER_URL}")
    dispatch = "broker (enqueue only, no worker)" if broker else "eager (inline in the request)"
    info = machine(pg_version)

    log(f"database {DB_NAME}: create and migrate ...")
    recreate_database(admin_url, DB_NAME)
    cleanups.append(lambda: drop_database(admin_url, DB_NAME))
    if broker:
        flush_broker(broker)
        cleanups.append(lambda: flush_broker(broker))
    env = server_env(var_dir, db_url, broker)
    configure(env)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    call_command("migrate", verbosity=0)
    # As a release does (docs/operations.md): whitenoise then finds its folder.
    call_command("collectstatic", verbosity=0, interactive=False)
    tokens = setup_org()
    connections.close_all()

    port = free_port()
    base = f"http://127.0.0.1:{port}/api/v1"
    log_path = var_dir / "gunicorn.log"
    label = args.worker_class + (
        f", {args.threads} threads" if args.worker_class == "gthread" else ""
    )
    log(f"gunicorn, {WORKERS} workers ({label}), on 127.0.0.1:{port}; dispatch {dispatch} ...")
    server = start_gunicorn(env, port, args.worker_class, args.threads, log_path)
    cleanups.append(lambda: stop_gunicorn(server))
    wait_ready(server, base, tokens["loader"], log_path)
    sampler = RssSampler(server.pid)
    master = server.pid

    def cpu() -> float:
        return workers_cpu_seconds(master)

    sampler.start()
    started = time.perf_counter()
    figures: dict[str, dict[str, Any]] = {}

    with admin_connection(db_url) as conn:
        autovacuum = conn.execute("SHOW autovacuum").fetchone()[0]
    analyzer = AutoAnalyze(db_url) if autovacuum == "off" and args.autoanalyze else None
    if analyzer is not None:
        analyzer.start()
        cleanups.append(analyzer.halt)
    sampler.phase = "load"
    log(
        f"load: {args.scale} models x {VERSIONS_PER_MODEL} versions by {CLIENTS} clients; "
        f"autovacuum is {autovacuum} on this server"
        + (f", its analysis stood in for every {ANALYZE_NAPTIME:g} s" if analyzer else "")
        + " ..."
    )
    figures["http_version_create"] = judge(
        "http_version_create", bench_load(base, tokens["loader"], args.scale, cpu)
    )
    log(f"  {describe('http_version_create', figures['http_version_create'])}")
    log("production: request + approve through the API ...")
    figures["http_production"] = judge(
        "http_production", bench_production(base, tokens, args.scale)
    )

    # The planner's statistics, as autovacuum would have gathered them on a live server by
    # now (its first pass waits up to a minute, and this server may run without it).
    analyzed = analyzer.stop() if analyzer is not None else None
    with admin_connection(db_url) as conn:
        conn.execute("ANALYZE")
    log("ANALYZE after the load")

    sampler.phase = "reads"
    log(f"reads: {WARMUP} warm-up + {ITERATIONS} requests each, one client ...")
    for name, figure in bench_reads(base, tokens["loader"], args.scale, cpu).items():
        figures[name] = judge(name, figure)

    sampler.phase = "artifacts"
    log(f"artifacts: {UPLOAD_RUNS} x {args.upload_mb} MB up and down ...")
    for name, figure in bench_artifacts(base, tokens["loader"], args.upload_mb * MB, cpu).items():
        figures[name] = judge(name, figure)

    rss = sampler.stop()
    if server.poll() is not None:
        raise BenchError(f"gunicorn died during the run:\n{log_tail(log_path)}")
    figures["http_worker_rss"] = judge("http_worker_rss", rss)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "scale": args.scale,
        "server": {
            "workers": WORKERS,
            "worker_class": args.worker_class,
            "threads": args.threads if args.worker_class == "gthread" else 1,
            "dispatch": dispatch,
            "database": "PostgreSQL " + pg_version,
            "autovacuum": autovacuum,
            # Tables the stand-in for autovacuum analysed during the load (None: not run).
            "analyzed_during_load": analyzed,
            "analyzed_after_load": True,
        },
        "machine": {**info, "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
        "total_seconds": round(time.perf_counter() - started, 1),
        "figures": figures,
    }


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.http", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--scale", type=int, default=1000, help="models, 10 versions each")
    parser.add_argument("--worker-class", choices=WORKER_CLASSES, default="gthread")
    parser.add_argument(
        "--threads", type=int, default=2, help="threads per gthread worker (default 2)"
    )
    parser.add_argument("--dispatch", choices=("auto", "broker", "eager"), default="auto")
    parser.add_argument(
        "--no-autoanalyze",
        dest="autoanalyze",
        action="store_false",
        help="on a server without autovacuum, do not stand in for its analysis during the load",
    )
    parser.add_argument("--upload-mb", type=int, default=UPLOAD_SIZE // MB, help="artifact size")
    parser.add_argument("--pg-url", default=PG_ADMIN_URL, help="a database to connect to first")
    parser.add_argument(
        "--output", type=Path, default=RESULTS, help="where to write the results (JSON)"
    )
    args = parser.parse_args(argv)
    if args.scale < 1 or args.threads < 1 or args.upload_mb < 1:
        parser.error("--scale, --threads and --upload-mb must be at least 1")
    signal.signal(signal.SIGTERM, _interrupt)
    var_dir = Path(tempfile.mkdtemp(prefix="modelvault-bench-http-"))
    cleanups: list[Callable[[], None]] = [lambda: shutil.rmtree(var_dir, ignore_errors=True)]
    try:
        results = run(args, var_dir, cleanups)
    except BenchError as exc:
        log(f"bench-http: {exc}")
        return 2
    except KeyboardInterrupt:
        log("bench-http: interrupted; cleaning up")
        return 130
    finally:
        for cleanup in reversed(cleanups):
            try:
                cleanup()
            except Exception as exc:  # the others still run
                log(f"bench-http: clean-up step failed: {exc}")
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    server, machine_info = results["server"], results["machine"]
    print(
        f"Modelvault HTTP bench, {results['date']}: gunicorn {server['workers']} "
        f"{server['worker_class']} workers x {server['threads']} threads, {server['database']}, "
        f"dispatch {server['dispatch']}; {machine_info['cpu_count']} CPUs; "
        f"scale {results['scale']} "
        f"({results['total_seconds']} s; load average {machine_info['load_average_at_start'][0]} "
        f"at start, {machine_info['load_average_at_end'][0]} at end)"
    )
    print(table(results["figures"]))
    print(f"Written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
