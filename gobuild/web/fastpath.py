"""A WSGI layer in front of Flask that answers what never changes from memory (or an open file).

The first GET/HEAD of a URL goes through Flask as always; when its answer is a 200 marked
immutable (everything under a result URL, full tiles, versioned static files) the status, the
headers and the body are kept, keyed by the request parts that views look at, and the next
identical request gets the same bytes without Flask: no routing, no request context, no hooks.
A file answer (a binary or its .gz, sent with wsgi.file_wrapper) is kept as its path and opened
per request; behind nginx its X-Accel-Redirect answer is kept while the file is on disk.
/tlog/latest is kept while the log has not grown (its size is one fstat). A view whose answer
changes (the result page) may still have it kept: keep_while registers a cheap check of whether
the view would answer the same now, run before each kept answer.

Requests with conditional or range headers always reach Flask, so 304s and ranges behave as
before. Fast-path answers skip Flask's hooks and views; what those do besides answering that must
happen on every request (count it in the metrics, mark a download for the binary cache's LRU) they
register with on_hit while Flask answers the first one, and each kept answer runs it again. Nothing
else is skipped that matters: these are stored bytes, and they start no build (nothing to rate-limit).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from ..tlog.server import TransparencyLog

MAX_BODY = 256 * 1024  # bodies kept in memory up to this size; bigger ones only as files
MAX_BYTES = 8 * 1024 * 1024  # all kept bodies and keys together (the oldest go first)
MAX_ENTRIES = 4096
MAX_KEY = 2048  # requests with longer paths, queries or headers are not kept (keys cost memory too)
LATEST = "/tlog/latest"
# Any of these makes the answer depend on more than the URL: let Flask handle it.
BYPASS = ("HTTP_IF_NONE_MATCH", "HTTP_IF_MODIFIED_SINCE", "HTTP_IF_MATCH", "HTTP_IF_UNMODIFIED_SINCE",
          "HTTP_RANGE", "HTTP_IF_RANGE", "HTTP_COOKIE")

ON_HIT = "gobuild.fastpath.on_hit"  # the environ key of a request's actions to run again per kept answer
KEEP_WHILE = "gobuild.fastpath.keep_while"  # the environ key of a changing answer's validity check
PREPARED = "gobuild.fastpath.prepared"  # the environ key of an answer prepare() made ready to send

Key = tuple[str, str, str, str, str, str, str, str, str]
Action = Callable[[], object]
Check = Callable[[], bool]
Send = Callable[["StartResponse"], Iterable[bytes]]


def on_hit(environ: dict[str, Any], action: Action) -> None:
    """While Flask answers a request the fast path may keep: run action again for each kept answer."""
    actions = environ.get(ON_HIT)
    if actions is not None:
        actions.append(action)


def keep_while(environ: dict[str, Any], still_valid: Check) -> bool:
    """While Flask answers a request: keep its 200 answer, not immutable, while still_valid() is true
    (it must be true only while the view would answer the same bytes). Whether it may be kept."""
    if ON_HIT not in environ:
        return False
    environ[KEEP_WHILE] = still_valid
    return True


@dataclass(frozen=True)
class Entry:
    """One kept answer: status and headers as Flask gave them, and bytes or a file path."""

    status: str
    headers: list[tuple[str, str]]
    body: bytes | None
    path: str | None
    blksize: int
    log_size: int  # for /tlog/latest: the log size it was signed at; -1 otherwise
    actions: tuple[Action, ...]  # what Flask's hooks and view do per request besides answering (on_hit)
    valid: Check | None = None  # for an answer that changes: whether it is still the view's (keep_while)


class _Recorder:
    """Stands in for wsgi.file_wrapper for one request to learn which file Flask sends."""

    def __init__(self, real: Callable[..., Any]) -> None:
        self.real = real
        self.path: str | None = None
        self.blksize = 8192
        self.wrapped: Any = None

    def __call__(self, filelike: Any, blksize: int = 8192) -> Any:
        name = getattr(filelike, "name", None)
        self.path = name if isinstance(name, str) else None
        self.blksize = blksize
        self.wrapped = self.real(filelike, blksize)
        return self.wrapped


class FastPath:
    """WSGI middleware: app (Flask's wsgi_app) behind a cache of immutable answers."""

    def __init__(self, app: WSGIApplication, tlog: TransparencyLog | None = None) -> None:
        self.app = app
        self.tlog = tlog
        self._entries: OrderedDict[Key, Entry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        ready = environ.pop(PREPARED, None)  # prepare() found it kept
        if ready is not None:
            return ready(start_response)  # type: ignore[no-any-return]
        key = _key(environ)
        if key is None:
            return self.app(environ, start_response)
        ready = self._ready(key, environ)
        return ready(start_response) if ready is not None else self._fill(key, environ, start_response)

    def prepare(self, environ: WSGIEnvironment) -> bool:
        """Whether environ's answer is kept. If so it is made ready (its file open, its per-request actions
        run) and a call with environ answers it at once, never asking Flask: a server may then answer it on
        a thread that must not wait (waitress' I/O thread, serving.py)."""
        key = _key(environ)
        ready = self._ready(key, environ) if key is not None else None
        if ready is None:
            return False
        environ[PREPARED] = ready
        return True

    def _ready(self, key: Key, environ: WSGIEnvironment) -> Send | None:
        """The kept answer for key, ready to send; None when Flask must answer."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if (entry.log_size >= 0 and (self.tlog is None or self.tlog.size() != entry.log_size)) or \
                (entry.valid is not None and not entry.valid()):
            self._drop(key)
            return None
        if entry.path is None:
            self._hit(entry)
            return partial(_send_body, entry)
        wrapper = environ.get("wsgi.file_wrapper")
        if wrapper is None:  # a server without one: Flask reads the file itself
            return None
        try:
            f = open(entry.path, "rb")  # noqa: SIM115 - the server closes it after sending
        except OSError:  # evicted from the store: Flask decides what to answer now
            self._drop(key)
            return None
        self._hit(entry)
        return partial(_send_file, entry, wrapper, f)

    @staticmethod
    def _hit(entry: Entry) -> None:
        for action in entry.actions:
            action()

    def _fill(self, key: Key, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Ask Flask, and keep the answer when it never changes."""
        latest = key[1] == LATEST and self.tlog is not None
        log_size = self.tlog.size() if latest and self.tlog is not None else -1
        real_wrapper = environ.get("wsgi.file_wrapper")
        recorder = _Recorder(real_wrapper) if real_wrapper is not None else None
        if recorder is not None:
            environ["wsgi.file_wrapper"] = recorder
        seen: list[tuple[str, list[tuple[str, str]]]] = []
        actions: list[Action] = []
        environ[ON_HIT] = actions

        def recording_start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            seen.append((status, list(headers)))
            return start_response(status, headers) if exc_info is None else start_response(status, headers, exc_info)

        result = self.app(environ, recording_start)
        valid = environ.pop(KEEP_WHILE, None)
        if real_wrapper is not None:
            environ["wsgi.file_wrapper"] = real_wrapper
        if not seen or not seen[-1][0].startswith("200 "):
            return result
        status, headers = seen[-1]
        headers = [(k, v) for k, v in headers if k.lower() != "date"]  # send_file's: the server adds a fresh one
        if any(k.lower() == "set-cookie" for k, _ in headers):
            return result
        cache = next((v for k, v in headers if k.lower() == "cache-control"), "")
        if "immutable" not in cache and not latest and valid is None:
            return result
        if any(k.lower() == "x-accel-redirect" for k, _ in headers):
            return self._keep_accel(key, status, headers, result, recorder, tuple(actions), valid)
        sent_file = recorder is not None and recorder.wrapped is not None and result is recorder.wrapped
        if sent_file:
            assert recorder is not None
            if recorder.path is not None:
                self._put(key, Entry(status, headers, None, recorder.path, recorder.blksize, -1, tuple(actions),
                                     valid))
            return result
        return self._keep_body(key, status, headers, result, log_size, tuple(actions), valid)

    def _keep_accel(self, key: Key, status: str, headers: list[tuple[str, str]], result: Iterable[bytes],
                    recorder: _Recorder | None, actions: tuple[Action, ...], valid: Check | None) -> Iterable[bytes]:
        """Keep an X-Accel-Redirect answer (nginx sends the file it names) while that file exists: once it is
        evicted, the app must see the request again to rebuild it, not nginx answer 404."""
        path = recorder.path if recorder is not None else None
        target = next(v for k, v in headers if k.lower() == "x-accel-redirect")
        if path is None or not path.endswith(target.rpartition("/")[2]):  # not the file Flask opened: ask each time
            return result

        def still_valid() -> bool:
            return os.path.isfile(path) and (valid is None or valid())

        return self._keep_body(key, status, headers, result, -1, actions, still_valid)

    def _keep_body(self, key: Key, status: str, headers: list[tuple[str, str]], result: Iterable[bytes],
                   log_size: int, actions: tuple[Action, ...], valid: Check | None) -> Iterable[bytes]:
        """Read a small body whole (Flask's bodies here are lists of bytes) and keep it."""
        length = next((v for k, v in headers if k.lower() == "content-length"), "")
        if not length.isdigit() or int(length) > MAX_BODY:
            return result
        try:
            body = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        if key[0] == "GET" and len(body) != int(length):
            return [body]
        self._put(key, Entry(status, headers, body, None, 0, log_size, actions, valid))
        return [body]

    def _put(self, key: Key, entry: Entry) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= _cost(key, old)
            self._entries[key] = entry
            self._bytes += _cost(key, entry)
            while self._entries and (self._bytes > MAX_BYTES or len(self._entries) > MAX_ENTRIES):
                gone_key, gone = self._entries.popitem(last=False)
                self._bytes -= _cost(gone_key, gone)

    def _drop(self, key: Key) -> None:
        with self._lock:
            gone = self._entries.pop(key, None)
            if gone is not None:
                self._bytes -= _cost(key, gone)

    def __len__(self) -> int:
        return len(self._entries)


def _key_size(key: Key) -> int:
    return sum(len(part) for part in key)


def _cost(key: Key, entry: Entry) -> int:
    """What an entry counts against MAX_BYTES: its body and its key."""
    return len(entry.body or b"") + _key_size(key)


def _key(environ: WSGIEnvironment) -> Key | None:
    """What a kept answer is looked up by; None for a request that always goes to Flask (or is too long to keep)."""
    method = environ.get("REQUEST_METHOD", "")
    if method not in ("GET", "HEAD") or any(h in environ for h in BYPASS):
        return None
    key: Key = (method, environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", ""), environ.get("HTTP_HOST", ""),
                environ.get("HTTP_ACCEPT", ""), environ.get("HTTP_ACCEPT_ENCODING", ""),
                environ.get("HTTP_HX_REQUEST", ""), environ.get("wsgi.url_scheme", ""),
                environ.get("HTTP_X_GOBUILD_ACCEL", ""))  # through nginx: accel.py answers X-Accel-Redirect
    return key if _key_size(key) <= MAX_KEY else None


def _send_body(entry: Entry, start_response: StartResponse) -> Iterable[bytes]:
    start_response(entry.status, list(entry.headers))
    return [entry.body or b""]


def _send_file(entry: Entry, wrapper: Callable[..., Iterable[bytes]], f: Any,
               start_response: StartResponse) -> Iterable[bytes]:
    start_response(entry.status, list(entry.headers))
    return wrapper(f, entry.blksize)

