"""A WSGI application for tests/registry/test_web_worker.py: it tells which thread of
which process answered, and the cyclic collector's state there."""

import gc
import json
import os
import threading


def application(environ, start_response):
    body = json.dumps(
        {
            "pid": os.getpid(),
            "thread": threading.get_ident(),
            "gc_threshold": gc.get_threshold()[0],
            "gc_frozen": gc.get_freeze_count(),
        }
    ).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]
