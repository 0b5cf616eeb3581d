"""The gunicorn worker class Modelvault is served with:
`gunicorn config.wsgi -k config.workers.KeepAliveThreadWorker --threads 2`
(docs/operations.md, "The web server").

gunicorn's threaded worker hands every request of a keep-alive connection over twice: the
main thread's poller sees the socket readable and submits it to the thread pool, and when
the response is out the pool thread hands the connection back through a pipe, to be
registered with the poller again. For a CI job or a training loop that sends its next
request as soon as the last one is answered, those hand-offs (two thread wake-ups, a pipe
write, two epoll changes and the interpreter lock changing hands each time) cost about as
much CPU as Django's own request handling.

This worker keeps serving a connection on the thread that answered it for as long as the
next request arrives within `SERVER_KEEPALIVE_LINGER_MS` (default 2 ms; 0 turns it off)
and no other connection is waiting for a thread; otherwise the connection goes back to the
poller as in gunicorn's own worker. A thread waits for the next request in poll(), which
releases the interpreter lock.

After the application is loaded, the objects it made at import (Django's models, URL
patterns, pydantic schemas: most of a worker's heap) are moved out of the cyclic garbage
collector's reach (`gc.freeze()`), and the youngest generation is collected after
`SERVER_GC_THRESHOLD` allocations rather than Python's 700, so that a request's few
thousand short-lived objects do not trigger several collections each.
"""

import gc
import select
import threading

from gunicorn.workers.gthread import ThreadWorker


class KeepAliveThreadWorker(ThreadWorker):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._linger_ms = 0
        self._waiting = 0  # connections submitted to the pool and not yet taken by a thread
        self._waiting_lock = threading.Lock()

    def load_wsgi(self):
        super().load_wsgi()
        from django.conf import settings

        self._linger_ms = settings.SERVER_KEEPALIVE_LINGER_MS
        if settings.SERVER_GC_THRESHOLD:
            gc.collect()
            gc.freeze()
            _, second, third = gc.get_threshold()
            gc.set_threshold(settings.SERVER_GC_THRESHOLD, second, third)

    def enqueue_req(self, conn):
        with self._waiting_lock:
            self._waiting += 1
        super().enqueue_req(conn)

    def handle(self, conn):
        with self._waiting_lock:
            self._waiting -= 1
        keep = super().handle(conn)
        while keep is True and self._next_request_here(conn):
            keep = super().handle(conn)
        return keep

    def _next_request_here(self, conn) -> bool:
        """Whether this thread should serve the connection's next request itself: the worker
        is not stopping, no connection waits for a thread, and the request is here already
        or arrives within the linger time."""
        if not self.alive or self._linger_ms <= 0 or self._waiting > 0:
            return False
        if conn.parser.unreader.buf.getvalue():  # read ahead with the last body
            return True
        poller = select.poll()
        poller.register(conn.sock.fileno(), select.POLLIN)
        return bool(poller.poll(self._linger_ms)) and self._waiting == 0
