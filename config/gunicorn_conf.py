"""gunicorn's configuration for Modelvault: `gunicorn -c python:config.gunicorn_conf
config.wsgi`, or in the checkout `gunicorn -c gunicorn.conf.py config.wsgi` (what `make serve`
runs: that file imports this one, which ships in the wheel; docs/operations.md, "The web
server"). HOST, PORT, WORKERS, THREADS and SERVER_GC_THRESHOLD come from the environment; a
flag on the command line still overrides this file."""

import gc
import os
import shutil
import sys
from pathlib import Path

from config.files import default_var_dir


def env_count(name: str, default: int, least: int) -> int:
    value = os.environ.get(name, "").strip() or str(default)
    if not value.isdigit() or int(value) < least:
        raise SystemExit(f"{name} must be a whole number of at least {least}, not {value!r}")
    return int(value)


# Loopback unless told otherwise: production puts a TLS-terminating proxy or load balancer
# in front and sets HOST (0.0.0.0 in a container).
bind = f"{os.environ.get('HOST') or '127.0.0.1'}:{env_count('PORT', 8000, 1)}"
# One process per core: a worker's threads share one interpreter lock, so a worker uses
# about one core however many threads it has.
workers = env_count("WORKERS", os.cpu_count() or 1, 1)
# Threads, not processes alone: a request waiting on PostgreSQL (a commit, the org's
# activity-chain row lock) or streaming a large artifact leaves its worker free to answer
# others, and the connections clients keep alive stay open.
worker_class = "gthread"
# Two request threads per worker: four contended for the interpreter lock and each version
# registered cost more CPU (docs/operations.md, "The web server").
threads = env_count("THREADS", 2, 1)
# CI jobs and training loops send request after request on one connection: a few seconds
# covers their pauses and still frees idle connections soon. Behind a load balancer, keep
# this above the balancer's own idle timeout, or it may reuse a connection being closed.
keepalive = 5
# A gthread worker's main loop reports alive while its threads serve, so a long upload is
# no hang; a worker silent this long is stuck and is replaced.
timeout = 30
# On a restart or deploy, requests in flight (an upload, a commit) get this long to finish.
graceful_timeout = 30
# The proxy in front logs requests; gunicorn's errors and restarts still go to stderr.
# Pass --access-logfile - to log each request here too.
accesslog = None
errorlog = "-"
# gunicorn's control socket has one default path per user: a second server on the host (a
# staging instance, a test run) would take it over. Signals and the process tree do its job.
control_socket_disable = True
# Not a gunicorn setting: the collector threshold post_worker_init sets (0: Python's own).
GC_THRESHOLD = env_count("SERVER_GC_THRESHOLD", 20000, 0)


def post_worker_init(worker) -> None:
    """Interpreter and collector tuning, in each worker once the application is loaded."""
    # A request thread back from PostgreSQL waits for the interpreter lock until the running
    # thread lets go, by default after 5 ms, and may hold the org's activity-chain row lock
    # all that while (its COMMIT is next): 1 ms gave 205-214 registrations/s where 5 ms gave
    # 189-195, at less CPU each.
    sys.setswitchinterval(0.001)
    # The import-time heap (models, URL patterns, API schemas: most of a worker's memory)
    # never becomes garbage: frozen, the collector stops rescanning it. A request makes a
    # few thousand short-lived objects: a youngest generation of 20,000 collects about once
    # per request instead of several times.
    if GC_THRESHOLD:
        gc.collect()
        gc.freeze()
        gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])


# Prometheus metrics (config/metrics.py): each worker writes its counts under this folder and
# the one that answers /metrics sums them. gunicorn puts raw_env in the environment before
# any worker imports prometheus_client; the folder is emptied when the server starts, so
# that no count of a previous run is summed.
METRICS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or str(
    Path(os.environ.get("VAR_DIR") or default_var_dir()) / "metrics"
)
raw_env = [f"PROMETHEUS_MULTIPROC_DIR={METRICS_DIR}"]


def on_starting(server) -> None:
    shutil.rmtree(METRICS_DIR, ignore_errors=True)
    os.makedirs(METRICS_DIR, mode=0o750, exist_ok=True)


def child_exit(server, worker) -> None:
    """A worker gone: its live gauges go with it (its counters stay in the sums)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
