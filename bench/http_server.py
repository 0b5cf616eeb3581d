"""The server side of the HTTP benchmark (bench/http.py): a throwaway PostgreSQL database,
the Redis broker, gunicorn with production settings, and its workers' CPU time and resident
set read from /proc."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).parent / "gunicorn"
ORG = "bench"
WORKERS = 2
# --worker-class: gunicorn's threaded worker (gunicorn.conf.py's), or its sync worker.
WORKER_CLASSES = ("gthread", "sync")
RSS_EVERY = 0.2  # seconds between samples of the workers' resident set


class BenchError(Exception):
    """A set-up step or a check failed: the message says what to do."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# PostgreSQL: a fresh database, dropped at the end.


def database_url(admin_url: str, name: str) -> str:
    parts = urlsplit(admin_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def admin_connection(admin_url: str):
    import psycopg

    try:
        return psycopg.connect(admin_url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise BenchError(
            f"PostgreSQL is needed, and {admin_url} does not answer:\n  "
            f"{str(exc).strip()}\nStart PostgreSQL (the server CI uses), or point "
            "BENCH_PG_URL at a server where this role may create databases."
        ) from None


def recreate_database(admin_url: str, name: str) -> None:
    from psycopg import sql

    with admin_connection(admin_url) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(admin_url: str, name: str) -> None:
    from psycopg import sql

    with admin_connection(admin_url) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


# Autovacuum's own rule for when a table is analysed: more rows changed since its last
# analysis than autovacuum_analyze_threshold + autovacuum_analyze_scale_factor x its rows.
ANALYZE_THRESHOLD = 50
ANALYZE_SCALE_FACTOR = 0.1
ANALYZE_NAPTIME = 5.0  # seconds between checks (autovacuum_naptime; its default is 60)
_DUE_FOR_ANALYZE = """
    SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
    WHERE s.n_mod_since_analyze > %s + %s * greatest(c.reltuples, 0)
"""


class AutoAnalyze(threading.Thread):
    """The analysis half of autovacuum, for a server that runs without it (this machine's
    PostgreSQL does): every ANALYZE_NAPTIME seconds, ANALYZE each table of the database
    that autovacuum's own rule would pick. The bench's database starts empty and grows from
    nothing during the load: without statistics, the plans PostgreSQL prepared for the first
    requests (on tables of a few rows: sequential scans) are kept for the whole load, where
    a live registry's tables have statistics by the time CI calls it."""

    def __init__(self, db_url: str) -> None:
        super().__init__(daemon=True)
        self.db_url = db_url
        self.analyzed = 0
        self.failure: BaseException | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        from psycopg import sql

        try:
            with admin_connection(self.db_url) as conn:
                while not self._halt.wait(ANALYZE_NAPTIME):
                    due = conn.execute(
                        _DUE_FOR_ANALYZE, (ANALYZE_THRESHOLD, ANALYZE_SCALE_FACTOR)
                    ).fetchall()
                    for (table,) in due:
                        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
                        self.analyzed += 1
        except BaseException as exc:  # reported by stop(): a figure must not hide it
            self.failure = exc

    def halt(self) -> None:
        self._halt.set()
        self.join()

    def stop(self) -> int:
        """Stop, and give the number of tables analysed."""
        self.halt()
        if self.failure is not None:
            raise BenchError(f"the stand-in for autovacuum failed: {self.failure}")
        return self.analyzed


def broker_answers(url: str) -> bool:
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except Exception as exc:
        log(f"  broker {url} does not answer ({exc})")
        return False
    return True


def flush_broker(url: str) -> None:
    import redis

    with contextlib.suppress(Exception):
        redis.Redis.from_url(url, socket_connect_timeout=2).flushdb()


# The server and its environment.


def server_env(var_dir: Path, db_url: str, broker: str) -> dict[str, str]:
    """Production settings (DEBUG off, a secret, a host list) but plain HTTP on loopback."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name
        not in ("ARTIFACT_STORAGE", "ARTIFACT_ROOT", "ARTIFACT_TMP_DIR", "EMAIL_HOST", "DEBUG")
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DEBUG": "false",
            "SECRET_KEY": "bench-http-" + "x" * 50,
            "ALLOWED_HOSTS": "127.0.0.1",
            "SECURE_SSL_REDIRECT": "false",
            "VAR_DIR": str(var_dir),
            "DATABASE_URL": db_url,
            "CELERY_BROKER_URL": broker,
            "LOG_LEVEL": "WARNING",
        }
    )
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(
    env: dict[str, str], port: int, worker_class: str, threads: int, log_path: Path
) -> subprocess.Popen:
    # The production configuration (gunicorn.conf.py), with the bench's bind, workers and log.
    command = [
        str(GUNICORN),
        "-c",
        "gunicorn.conf.py",
        "config.wsgi",
        "--workers",
        str(WORKERS),
        "--worker-class",
        worker_class,
        # gunicorn turns a sync worker with threads into gthread: sync gets exactly one.
        "--threads",
        str(threads if worker_class == "gthread" else 1),
        "--bind",
        f"127.0.0.1:{port}",
        "--error-logfile",
        str(log_path),
    ]
    return subprocess.Popen(command, cwd=REPO, env=env, stdin=subprocess.DEVNULL)


def wait_ready(server: subprocess.Popen, base: str, token: str, log_path: Path) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise BenchError(f"gunicorn exited ({server.returncode}):\n{log_tail(log_path)}")
        with contextlib.suppress(httpx.TransportError):
            response = httpx.get(
                f"{base}/orgs/{ORG}/models?limit=1",
                headers={"Authorization": f"Bearer {token}"},
                timeout=5,
            )
            if response.status_code == 200:
                return
            raise BenchError(
                f"the server answered {response.status_code}: {response.text[:500]}\n"
                f"{log_tail(log_path)}"
            )
        time.sleep(0.2)
    raise BenchError(f"gunicorn did not answer within 60 s:\n{log_tail(log_path)}")


def stop_gunicorn(server: subprocess.Popen) -> None:
    if server.poll() is not None:
        return
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# Worker resident set: /proc, sampled in a thread.


def _status_kb(pid: int, field: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def worker_pids(master: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                # The fields after the command name (which may hold spaces) start at ')'.
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master:
            pids.append(int(entry))
    return sorted(pids)


def workers_cpu_seconds(master: int) -> float:
    """User + system CPU time of the live workers (their own, not their children's)."""
    ticks = 0
    for pid in worker_pids(master):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


class RssSampler(threading.Thread):
    """The largest VmRSS seen per worker, per phase; VmHWM (the kernel's own peak) at the end."""

    def __init__(self, master: int) -> None:
        super().__init__(daemon=True)
        self.master = master
        self.phase = "start"
        self.peaks: dict[str, int] = {}
        self.samples = 0
        self.workers_seen: set[int] = set()
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(RSS_EVERY)

    def sample(self) -> None:
        for pid in worker_pids(self.master):
            rss = _status_kb(pid, "VmRSS")
            if rss is None:
                continue
            self.workers_seen.add(pid)
            self.samples += 1
            self.peaks[self.phase] = max(self.peaks.get(self.phase, 0), rss)

    def stop(self) -> dict[str, Any]:
        self._halt.set()
        self.join()
        pids = worker_pids(self.master)
        now = [_status_kb(pid, "VmRSS") or 0 for pid in pids]
        hwm = [_status_kb(pid, "VmHWM") or 0 for pid in pids]
        sampled = max(self.peaks.values(), default=0)
        return {
            "max_mb": round(max([sampled, *hwm]) / 1024, 1),
            "sampled_max_mb": round(sampled / 1024, 1),
            "hwm_mb": [round(kb / 1024, 1) for kb in hwm],
            "rss_at_end_mb": [round(kb / 1024, 1) for kb in now],
            "by_phase_mb": {phase: round(kb / 1024, 1) for phase, kb in self.peaks.items()},
            "samples": self.samples,
            "workers": len(self.workers_seen),
        }
