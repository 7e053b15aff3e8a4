"""A build log in a Redis stream: entries hold the log's bytes, each entry's id is 0-<end offset>.

The id carrying the byte offset lets a reader resume from any offset (SSE Last-Event-ID) with
XRANGE/XREAD, and lets several writers (a worker, a worker that took the job over, the
coordinator's notes) append without overlapping: the append is one Lua script, so it is atomic.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import redis

STREAM_TTL = 24 * 3600  # seconds a log stream outlives its last append
FORWARD_SECONDS = 0.2  # how often a worker's log file is copied into the stream
CHUNK = 64 * 1024  # most bytes in one entry

_APPEND = """
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local offset = 0
if #last > 0 then offset = tonumber(string.match(last[1][1], '-(%d+)$')) end
local ends = offset + string.len(ARGV[1])
redis.call('XADD', KEYS[1], '0-' .. ends, 'd', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return ends
"""


class LogStream:
    """One build's log stream in Redis."""

    def __init__(self, conn: redis.Redis, key: str) -> None:
        self.conn = conn
        self.key = key
        self._append = conn.register_script(_APPEND)

    def append(self, data: bytes) -> int:
        """Add data at the end of the log; the log's new length."""
        ends = 0
        for i in range(0, len(data), CHUNK):
            ends = int(self._append(keys=[self.key], args=[data[i:i + CHUNK], STREAM_TTL]))
        return ends

    def read(self, after: str = "0-0", block_ms: int | None = None) -> tuple[bytes, str]:
        """The bytes of the entries after the entry id after (blocking up to block_ms for the first), and
        the id of the last entry read (after itself when there was none)."""
        answer: Any = self.conn.xread({self.key: after}, count=256, block=block_ms)
        parts = []
        for _, entries in answer or ():
            for entry_id, fields in entries:
                parts.append(fields[b"d"])
                after = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        return b"".join(parts), after

    def whole(self) -> bytes:
        """The whole log so far."""
        parts: list[bytes] = []
        after = "0-0"
        while True:
            data, last = self.read(after)
            if last == after:
                return b"".join(parts)
            parts.append(data)
            after = last

    def delete(self) -> None:
        self.conn.delete(self.key)


class FileForwarder:
    """Copies what a build writes to its log file into the stream while it runs (a worker's thread)."""

    def __init__(self, path: Path, stream: LogStream) -> None:
        self.path = path
        self.stream = stream
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log forwarder", daemon=True)
        self._position = 0

    def __enter__(self) -> FileForwarder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._forward()  # the last bytes, after the build wrote them

    def _run(self) -> None:
        while not self._stop.wait(FORWARD_SECONDS):
            self._forward()

    def _forward(self) -> None:
        with open(self.path, "rb") as f:
            f.seek(self._position)
            data = f.read()
        if data:
            self.stream.append(data)
            self._position += len(data)
