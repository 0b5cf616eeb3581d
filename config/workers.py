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
releases the interpreter lock, on its connection and on a wake-up pipe of its own: a
connection submitted to the pool wakes one lingering thread, which hands its own connection
back to the poller unless an idle thread has taken the new one meanwhile, so that lingering
never keeps another client waiting.

After the application is loaded, the objects it made at import (Django's models, URL
patterns, pydantic schemas: most of a worker's heap) are moved out of the cyclic garbage
collector's reach (`gc.freeze()`), and the youngest generation is collected after
`SERVER_GC_THRESHOLD` allocations rather than Python's 700, so that a request's few
thousand short-lived objects do not trigger several collections each.
"""

import gc
import os
import select
import threading
import time

from gunicorn.workers.gthread import ThreadWorker


class KeepAliveThreadWorker(ThreadWorker):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._linger_ms = 0
        self._waiting = 0  # connections submitted to the pool and not yet taken by a thread
        self._lingering = []  # wake-up pipes (write ends) of the threads lingering now
        self._waiting_lock = threading.Lock()
        self._thread = threading.local()

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
            if self._lingering:
                # Under the lock: a thread that finds its pipe gone from the list knows
                # that the byte is in it already.
                os.write(self._lingering.pop(), b"\0")
        super().enqueue_req(conn)

    def handle(self, conn):
        with self._waiting_lock:
            self._waiting -= 1
        keep = super().handle(conn)
        while keep is True and self._next_request_here(conn):
            keep = super().handle(conn)
        return keep

    def _wake_pipe(self) -> tuple[int, int]:
        pipe = getattr(self._thread, "pipe", None)
        if pipe is None:
            pipe = self._thread.pipe = os.pipe()
            os.set_blocking(pipe[0], False)
        return pipe

    def _next_request_here(self, conn) -> bool:
        """Whether this thread should serve the connection's next request itself: the worker
        is not stopping, no connection waits for a thread, and the request is here already
        or arrives within the linger time, before another connection needs the thread."""
        if not self.alive or self._linger_ms <= 0 or self._waiting > 0:
            return False
        if conn.parser.unreader.buf.getvalue():  # read ahead with the last body
            return True
        wake_read, wake_write = self._wake_pipe()
        sock = conn.sock.fileno()
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        poller.register(wake_read, select.POLLIN)
        deadline = time.monotonic() + self._linger_ms / 1000
        while True:
            with self._waiting_lock:
                if self._waiting > 0:
                    return False
                self._lingering.append(wake_write)
            ready: set[int] = set()
            try:
                remaining_ms = max(0, round((deadline - time.monotonic()) * 1000))
                ready = {fd for fd, _ in poller.poll(remaining_ms)}
            finally:
                with self._waiting_lock:
                    woken = wake_write not in self._lingering
                    if not woken:
                        self._lingering.remove(wake_write)
                if woken or wake_read in ready:
                    # The byte enqueue_req wrote (under the lock, so it is there once the
                    # pipe is found taken out), and any left behind: none may cut short a
                    # later linger.
                    _drain(wake_read)
            if sock in ready:
                return self._waiting == 0
            if wake_read not in ready and time.monotonic() >= deadline:
                return False


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 64):
            pass
    except BlockingIOError:
        pass
