"""The tested production topology (`make test-topology`; docs/deploy.md, "A tested topology").

Its tests are marked `topology` and left out of every run whose `-m` does not name the
marker (`make test`, `test-sqlite`, `test-postgres`): they start servers of their own and
take minutes. The topology is started once for the session and stopped at its end, also
after a failure or Ctrl-C; the time each phase took is printed at the end of the run.
"""

import os
import secrets
import shutil
import time
from collections.abc import Iterator

import pytest

from tests.conftest import missing_service
from tests.topology.processes import Processes, free_port
from tests.topology.stack import (
    FIGURES,
    TIMINGS,
    Redis,
    Topology,
    add_reviewer,
    make_org,
    production_env,
    start_node,
    start_s3,
    start_worker,
    wait_ready,
)

# Where the throwaway database is made and dropped (a role that may create databases).
PG_URL = os.environ.get("TOPOLOGY_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def pytest_collection_modifyitems(config, items):
    if "topology" in (config.getoption("markexpr") or ""):
        return
    kept, left_out = [], []
    for item in items:
        (left_out if item.get_closest_marker("topology") else kept).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept


def pytest_runtest_makereport(item, call):
    if call.when == "call" and item.get_closest_marker("topology"):
        TIMINGS[item.name] = call.duration


def pytest_terminal_summary(terminalreporter):
    if not TIMINGS:
        return
    terminalreporter.write_sep("-", "topology: seconds per phase")
    for name, seconds in TIMINGS.items():
        terminalreporter.write_line(f"{name:<66} {seconds:6.1f}")
    for line in FIGURES:
        terminalreporter.write_line(line)


def admin_connection():
    import psycopg

    try:
        return psycopg.connect(PG_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        missing_service(f"the topology needs PostgreSQL at {PG_URL} (TOPOLOGY_PG_URL): {exc}")


def database_url(name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(PG_URL)._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def topology(tmp_path_factory) -> Iterator[Topology]:
    """Redis, S3, PostgreSQL's throwaway database, nodes A and B, the worker with beat."""
    from psycopg import sql

    start = time.monotonic()
    if shutil.which("redis-server") is None:
        missing_service("the topology runs a redis-server of its own (apt-get install redis)")
    root = tmp_path_factory.mktemp("topology")
    (root / "logs").mkdir()
    processes = Processes()
    database = f"modelvault_topology_{secrets.token_hex(4)}"
    created = False
    try:
        with admin_connection() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
            created = True
        redis = Redis(free_port(), root / "logs", processes)
        redis.start()
        s3_url = start_s3(processes, root / "logs")
        port_a, port_b = free_port(), free_port()
        env = production_env(
            database_url(database), redis.url, s3_url, site_url=f"http://127.0.0.1:{port_a}"
        )
        topology = Topology(root, env, redis, s3_url, timings=TIMINGS)
        make_org(topology)
        for name, port in (("a", port_a), ("b", port_b)):
            topology.nodes[name] = start_node(topology, processes, name, port)
        for node in topology.nodes.values():
            wait_ready(node)
        start_worker(topology, processes)
        add_reviewer(topology)
        TIMINGS.since("start: database, redis, s3, migrate, 2 nodes, worker, users", start)
        yield topology
    finally:
        stopping = time.monotonic()
        for name, seconds in processes.stop_all().items():
            TIMINGS[f"stop: {name}"] = seconds
        if created:
            with admin_connection() as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(database)
                    )
                )
        TIMINGS.since("stop: all, the database dropped", stopping)
        TIMINGS["total"] = time.monotonic() - start
