"""Kept answers served on waitress' I/O thread, without handing the request to a worker thread.

A worker costs two thread wake-ups per request (the I/O thread hands the request over, the worker
hands the connection back), each a context switch and, on a busy machine, a wait in the run queue:
for an answer the fast path keeps (a few µs of Python) they were most of its time. The I/O thread
answers a request itself only when nothing can make it wait: the fast path has the answer ready
(fastpath.FastPath.prepare: its file open, Flask never asked), it is the connection's only request
and nothing of an earlier answer is still buffered (so waitress' write never waits for the client).
Everything else goes to a worker as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Prepare = Callable[[dict[str, Any]], bool]  # fastpath.FastPath.prepare


def start(channel: Any, prepare: Prepare | None) -> None:
    """Serve channel's new request here if prepare readies its kept answer, else give it to a worker."""
    task = _inline_task(channel, prepare)
    if task is None:
        channel.server.task_dispatcher.add_task(channel)
        return
    channel.task_class = lambda _channel, _request: task  # service() takes this task, environ prepared
    try:
        channel.service()
    finally:
        del channel.task_class


def _inline_task(channel: Any, prepare: Prepare | None) -> Any:
    """A task whose answer is ready in memory or an open file; None unless serving it here cannot wait."""
    if prepare is None or len(channel.requests) != 1 or channel.total_outbufs_len or channel.will_close \
            or channel.close_when_flushed or channel.requests[0].error is not None:
        return None
    task = channel.task_class(channel, channel.requests[0])
    try:
        return task if prepare(task.get_environment()) else None
    except Exception:  # a worker answers it as before (and reports what went wrong)
        return None
