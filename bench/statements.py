"""Where a registration's CPU goes, request by request and statement by statement:
`make bench-statements` (python -m bench.statements).

In one process, on a throwaway PostgreSQL database on this host, models of the side-by-side
harness's shape (../shared/bench: a model, ten versions with three tags each, a stage request
by a member, its approval by an org admin, the `production` alias) are registered through
the API with Django's test client, as the demo's alice and admin (seed_demo, as the harness
seeds). For each kind of request it prints the CPU of this process (the application and the
test client) and of the PostgreSQL backend serving it, read from /proc/PID/schedstat: the
server must run on this host. `--statements` adds each statement's count and backend CPU
(BEGIN and COMMIT are sent by psycopg, not through Django's cursor: they are the rest of a
request's backend CPU). Celery runs eagerly unless the Redis at BENCH_STATEMENTS_BROKER_URL
(default redis://127.0.0.1:6379/13, flushed before and after) answers: then a request only
publishes its tasks, as in production, and nobody consumes them.

Figures only, compared within one run (this process and its backend on the same machine
at the same time). The database and the VAR_DIR are removed at the end, also after a
failure or Ctrl-C.

    --models N       models measured (default 100), after --warm N (default 20) not measured
    --statements     each statement's count and backend CPU, by kind of request
"""

import argparse
import collections
import io
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.http_server import (
    BenchError,
    admin_connection,
    broker_answers,
    database_url,
    drop_database,
    flush_broker,
    log,
    recreate_database,
    server_env,
)

PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
DB_NAME = os.environ.get("BENCH_STATEMENTS_DB", "modelvault_bench_statements")
BROKER_URL = os.environ.get("BENCH_STATEMENTS_BROKER_URL", "redis://127.0.0.1:6379/13")
ORG = "acme"
KINDS = ("model", "version", "stage request", "approve", "alias")


def settings_env(var_dir: Path, db_url: str, broker: str | None) -> None:
    """This process's settings: bench.http's server's (production, DEBUG off, plain HTTP;
    no broker: Celery eager), for the test client's host."""
    env = server_env(var_dir, db_url, broker or "")
    # The request log's lines (about 0.01 ms each) would fill the terminal.
    env.update(ALLOWED_HOSTS="testserver", REQUEST_LOG_LEVEL="WARNING")
    os.environ.clear()
    os.environ.update(env)


class Backend:
    """The CPU time of the PostgreSQL backend behind Django's connection, in nanoseconds."""

    def __init__(self, connection):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]
        self.path = Path(f"/proc/{pid}/schedstat")
        if not self.path.exists():
            raise BenchError(
                f"the PostgreSQL backend (pid {pid}) is not a process of this host: "
                "point BENCH_PG_URL at a server on this machine"
            )

    def ns(self) -> int:
        return int(self.path.read_text().split()[0])


class Meter:
    """Per kind of request: count, this process's CPU and the backend's; per statement the
    same for the backend (Django's execute_wrapper, a public hook)."""

    def __init__(self, backend: Backend):
        self.backend = backend
        self.kind = "setup"
        self.on = False
        self.requests = collections.defaultdict(lambda: [0, 0.0, 0])
        self.statements = collections.defaultdict(lambda: [0, 0])

    def __call__(self, execute, sql, params, many, context):
        if not self.on:
            return execute(sql, params, many, context)
        start = self.backend.ns()
        try:
            return execute(sql, params, many, context)
        finally:
            used = self.backend.ns() - start
            line = self.statements[(self.kind, " ".join(sql.split())[:100])]
            line[0] += 1
            line[1] += used

    def request(self, kind: str, call):
        self.kind = kind
        cpu, start = time.process_time(), self.backend.ns()
        response = call()
        used_cpu, used = time.process_time() - cpu, self.backend.ns() - start
        if response.status_code >= 300:
            raise BenchError(f"{kind}: {response.status_code} {response.content[:300]!r}")
        if self.on:
            line = self.requests[kind]
            line[0] += 1
            line[1] += used_cpu
            line[2] += used
        return response


def register(client, meter: Meter, tokens: dict, name: str) -> None:
    """One model of the harness's shape, request by request as its Modelvault adapter sends
    them (../shared/bench/modelvault_adapter.py)."""
    api = f"/api/v1/orgs/{ORG}"
    writer = {"HTTP_AUTHORIZATION": f"Bearer {tokens['alice']}"}
    approver = {"HTTP_AUTHORIZATION": f"Bearer {tokens['admin']}"}

    def post(path, body, headers):
        return client.post(path, json.dumps(body), content_type="application/json", **headers)

    meter.request("model", lambda: post(f"{api}/models", {"name": name, "tags": {}}, writer))
    for number in range(1, 11):
        body = {
            "tags": {"owner": "team-07", "git_sha": f"{name}-{number}", "step": str(number)},
            "source_run": f"runs:/{name}-{number}/model",
        }
        meter.request("version", lambda b=body: post(f"{api}/models/{name}/versions", b, writer))
    version = f"{api}/models/{name}/versions/10"
    request = meter.request(
        "stage request",
        lambda: post(f"{version}/stage-requests", {"stage": "production", "comment": "x"}, writer),
    ).json()
    decide = f"/api/v1/stage-requests/{request['id']}/approve"
    meter.request("approve", lambda: post(decide, {"comment": "ok"}, approver))
    meter.request(
        "alias",
        lambda: client.put(
            f"{api}/models/{name}/aliases/production",
            json.dumps({"version": 10}),
            content_type="application/json",
            **writer,
        ),
    )


def report(meter: Meter, models: int, statements: bool) -> None:
    print(f"\n{models} models; CPU per request, ms")
    print("| request | count | this process | PostgreSQL backend |")
    print("| --- | --- | --- | --- |")
    total_cpu = total_pg = 0.0
    for kind in KINDS:
        count, cpu, pg = meter.requests[kind]
        total_cpu, total_pg = total_cpu + cpu, total_pg + pg / 1e9
        print(f"| {kind} | {count} | {cpu / count * 1e3:.2f} | {pg / count / 1e6:.2f} |")
    print(
        f"| a model, all {sum(meter.requests[k][0] for k in KINDS) // models} requests | "
        f"{models} | {total_cpu / models * 1e3:.1f} | {total_pg / models * 1e3:.1f} |"
    )
    if not statements:
        return
    print("\nStatements by request, backend CPU (us) each; per model")
    print("| request | per model | backend us | statement |")
    print("| --- | --- | --- | --- |")
    # By request, then by the backend's CPU over all their runs.
    order = sorted(meter.statements.items(), key=lambda i: (KINDS.index(i[0][0]), -i[1][1]))
    for (kind, sql), (count, ns) in order:
        text = re.sub(r"\|", "/", sql)
        print(f"| {kind} | {count / models:.1f} | {ns / count / 1e3:.0f} | `{text}` |")


def run(args: argparse.Namespace) -> None:
    admin_connection(PG_ADMIN_URL).close()  # a clear error before anything is made
    broker = BROKER_URL if broker_answers(BROKER_URL) else None
    log(f"Celery: {'publishing to ' + broker + ' (not consumed)' if broker else 'eager'}")
    recreate_database(PG_ADMIN_URL, DB_NAME)
    var_dir = None
    try:
        var_dir = Path(tempfile.mkdtemp(prefix="mv-bench-statements-"))
        (var_dir / "staticfiles").mkdir()  # whitenoise's root: no static file is asked for
        if broker:
            flush_broker(broker)
        settings_env(var_dir, database_url(PG_ADMIN_URL, DB_NAME), broker)
        measure(args, var_dir)
    finally:
        from django.apps import apps

        if apps.ready:
            from django.db import connections

            connections.close_all()
        drop_database(PG_ADMIN_URL, DB_NAME)
        if broker:
            flush_broker(broker)
        if var_dir is not None:
            shutil.rmtree(var_dir, ignore_errors=True)


def measure(args: argparse.Namespace, var_dir: Path) -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    log("migrating and seeding the demo")
    call_command("migrate", verbosity=0)
    tokens_file = var_dir / "tokens.json"
    call_command("seed_demo", tokens=str(tokens_file), stdout=io.StringIO())
    tokens = json.loads(tokens_file.read_text())
    client = Client()
    meter = Meter(Backend(connection))
    with connection.execute_wrapper(meter):
        for i in range(args.warm):
            register(client, meter, tokens, f"warm-{i:04d}")
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        log(f"{args.warm} models to warm up; measuring {args.models}")
        meter.on = True
        for i in range(args.models):
            register(client, meter, tokens, f"model-{i:04d}")
    report(meter, args.models, args.statements)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--warm", type=int, default=20)
    parser.add_argument("--statements", action="store_true")
    args = parser.parse_args(argv)
    if args.models < 1 or args.warm < 0:
        parser.error("--models must be at least 1 and --warm at least 0")
    try:
        run(args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
