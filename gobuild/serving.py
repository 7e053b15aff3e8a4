"""waitress, set up so that idle sockets and slow clients cannot lock anyone out.

waitress reads each request whole on its event loop before a worker thread sees it, so a slow
client costs a connection, never a thread. What is left to bound: how many connections (idle
ones are closed after IDLE_TIMEOUT), how long one request's head may take to arrive (a
slowloris client sending a byte every few seconds is closed after HEADER_TIMEOUT), and how big a
body waitress buffers (max_body: a larger Content-Length is answered 413 before any is read).
"""

from __future__ import annotations

import resource
import threading
import time
import types
from typing import Any

from . import inline, sendfile

CONNECTION_LIMIT = 2000  # open sockets; each is a small buffer, not a thread
IDLE_TIMEOUT = 30  # seconds a keep-alive connection may sit idle
HEADER_TIMEOUT = 20  # seconds from a request's first byte until it was read whole
CLEANUP_INTERVAL = 5  # how often both are checked
SMALL_BODY = 4 << 20  # bytes: every request but a queue worker's upload is a small form or has no body


def max_body(upload_mb: int) -> int:
    """The largest request body to accept: a queue worker's upload (upload_mb MiB; 0: no queue) or SMALL_BODY."""
    return upload_mb << 20 if upload_mb else SMALL_BODY


def waitress_options(threads: int) -> dict[str, Any]:
    """The waitress settings gobuild serves with."""
    return {
        "threads": threads,
        "max_request_body_size": SMALL_BODY,
        "connection_limit": CONNECTION_LIMIT,
        "channel_timeout": IDLE_TIMEOUT,
        "cleanup_interval": CLEANUP_INTERVAL,
        "asyncore_use_poll": True,  # select() fails past file descriptor 1024
        "ident": "gobuild",
        "clear_untrusted_proxy_headers": True,
    }


def raise_open_files_limit(wanted: int = CONNECTION_LIMIT + 1000) -> None:
    """Let the process hold CONNECTION_LIMIT sockets besides its files (soft limit up to the hard one)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def create_server(app: Any, host: str, port: int, threads: int, prepare: inline.Prepare | None = None,
                  **overrides: Any) -> Any:
    """A waitress server with the limits above (overrides: other waitress settings), not yet running.

    prepare (the fast path's): requests whose answer it readies are answered on the I/O thread (inline.py)."""
    import waitress
    from waitress.channel import HTTPChannel

    class Channel(HTTPChannel):
        """Notes when the request being read began; starts each new request itself (inline.start)."""

        request_started = 0.0
        parking = 0  # the I/O thread's id while it runs received(): its add_task notes the channel, no queueing
        parked = False

        def _flush_some(self, do_close: bool = True) -> bool:
            return sendfile.flush_some(self, do_close)

        def received(self, data: bytes) -> bool:
            if self.request is None and data:
                self.request_started = time.monotonic()
            self.parking = threading.get_ident()
            try:
                ok = bool(super().received(data))
            finally:
                self.parking = 0
            if self.parked:  # started after received() let go of requests_lock, which service() takes
                self.parked = False
                inline.start(self, prepare)
            return ok

    options = waitress_options(threads) | overrides
    server = waitress.create_server(app, host=host, port=port, **options)  # type: ignore[attr-defined]
    server.channel_class = Channel
    plain_maintenance = server.maintenance

    def maintenance(self: Any, now: float) -> None:
        plain_maintenance(now)
        cutoff = time.monotonic() - HEADER_TIMEOUT
        for channel in list(self.active_channels.values()):
            if getattr(channel, "request", None) is not None and not channel.requests \
                    and getattr(channel, "request_started", 0.0) < cutoff:
                channel.will_close = True  # a request still not read whole: slowloris

    server.maintenance = types.MethodType(maintenance, server)

    def add_task(self: Any, channel: Any) -> None:
        if getattr(channel, "parking", 0) == threading.get_ident():  # not a worker starting the next request
            channel.parked = True
        else:
            self.task_dispatcher.add_task(channel)

    server.add_task = types.MethodType(add_task, server)
    return server
