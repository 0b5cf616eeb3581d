"""A Celery worker subprocess for the worker tests and the notification benchmark.

One worker process (solo pool) of `config.celery` consuming a queue of its own, so that no
other worker on the same broker takes its tasks; it runs in a process group of its own, so
stopping it stops everything it started. The caller passes the environment the worker needs
beyond the broker (DATABASE_URL of the test database, VAR_DIR, ...). No pytest here: the
benchmark imports this module too.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

READY = " ready."  # what the worker logs at INFO once it consumes


class WorkerFailed(RuntimeError):
    """The worker exited or did not get ready; the message carries its log."""


def database_url(db: dict) -> str:
    """A PostgreSQL DATABASE_URL for a Django database's settings (the test database)."""
    user = quote(db["USER"] or "", safe="")
    password = f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else ""
    port = f":{db['PORT']}" if db["PORT"] else ""
    return f"postgres://{user}{password}@{db['HOST'] or '127.0.0.1'}{port}/{db['NAME']}"


def forget_broker_connections():
    """Publish this process's tasks through a new Celery app, made the current and default
    one, that reads Django's settings as they are now (its broker URL, eagerness, queue): an
    app keeps the connection pool of the broker it first published to, and a test or bench
    that changes CELERY_BROKER_URL needs another. The tasks are shared tasks, so they
    resolve on whichever app is current. Returns that app."""
    from celery import Celery

    app = Celery("modelvault", set_as_current=True)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.set_default()
    return app


@dataclass
class Worker:
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def wait_ready(self, timeout: float) -> None:
        """Until the worker logs that it is ready (needs loglevel INFO)."""
        deadline = time.monotonic() + timeout
        while READY not in self.log():
            if self.process.poll() is not None:
                raise WorkerFailed(
                    f"the Celery worker exited ({self.process.returncode}):\n{self.log()}"
                )
            if time.monotonic() > deadline:
                raise WorkerFailed(f"the Celery worker was not ready:\n{self.log()}")
            time.sleep(0.1)

    def kill(self) -> None:
        """kill -9, the whole process group: no warm shutdown, no acknowledgement."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=15)

    def stop(self) -> None:
        """A warm shutdown (SIGTERM to the group); kill -9 if it takes over 15 s."""
        if self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            self.kill()


def start_worker(
    *,
    broker: str,
    queue: str,
    log_path: Path | str,
    env: dict[str, str] | None = None,
    hostname: str | None = None,
    loglevel: str = "INFO",
    cwd: Path | str | None = None,
    as_deployed: bool = False,
) -> Worker:
    """Start a worker on `broker` consuming `queue` only, logging to `log_path`; `env` is
    added to this process's environment. It is not waited for: see Worker.wait_ready.

    The worker is a lean one (solo pool, no beat, no gossip, mingle or heartbeat) unless
    `as_deployed`: then it is the one `make worker` starts (prefork pool, embedded beat)."""
    if cwd is None:
        from django.conf import settings

        cwd = settings.BASE_DIR
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "CELERY_BROKER_URL": broker,
        **(env or {}),
    }
    if as_deployed:
        kind = ["-B"]
    else:
        kind = [
            "--pool=solo",
            "--concurrency=1",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            *kind,
            f"--queues={queue}",
            f"--hostname={hostname or queue}@%h",
            f"--loglevel={loglevel}",
            f"--logfile={log_path}",
        ],
        cwd=cwd,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, stopped as a whole
    )
    return Worker(process, Path(log_path))
