"""A WSGI application for tests/registry/test_web_worker.py, served by gunicorn with
gunicorn.conf.py: it tells which process answered and the interpreter's tuning there.
GET /together waits until a second request is being served beside it."""

import gc
import json
import os
import sys
import threading

together = threading.Barrier(2, timeout=10)


def application(environ, start_response):
    if environ["PATH_INFO"] == "/together":
        together.wait()
    body = json.dumps(
        {
            "pid": os.getpid(),
            "gc_threshold": gc.get_threshold()[0],
            "gc_frozen": gc.get_freeze_count(),
            "switch_interval": sys.getswitchinterval(),
        }
    ).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]
