"""Kept answers are answered on waitress' I/O thread (gobuild/inline.py): not behind busy workers, never Flask there."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from gobuild import serving
from gobuild.web.fastpath import FastPath
from tests.realserver import in_thread

IMMUTABLE = ("Cache-Control", "public, max-age=31536000, immutable")
IO_THREAD = "waitress-io"


class App:
    """/slow waits for release; /kept and /file are immutable (a body, a file); notes the thread of each call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.release = threading.Event()
        self.threads: list[str] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        self.threads.append(threading.current_thread().name)
        if environ["PATH_INFO"] == "/slow":
            self.release.wait(60)
            start_response("200 OK", [("Content-Length", "4")])
            return [b"slow"]
        if environ["PATH_INFO"] == "/file":
            start_response("200 OK", [IMMUTABLE, ("Content-Length", str(self.path.stat().st_size))])
            return environ["wsgi.file_wrapper"](self.path.open("rb"), 8192)
        start_response("200 OK", [IMMUTABLE, ("Content-Length", "4")])
        return [b"kept"]


@contextmanager
def served(app: App, threads: int) -> Iterator[str]:
    fast = FastPath(app)
    with in_thread(serving.create_server(fast, "127.0.0.1", 0, threads, prepare=fast.prepare), IO_THREAD) as base:
        try:
            yield base
        finally:
            app.release.set()  # before the server stops: its workers wait on it


def test_kept_answers_are_served_while_every_worker_is_busy(tmp_path: Path) -> None:
    data = os.urandom(3 << 20)
    app = App(tmp_path / "blob")
    app.path.write_bytes(data)
    with served(app, threads=1) as base:
        assert requests.get(base + "/kept", timeout=30).content == b"kept"  # kept from here on
        assert requests.get(base + "/file", timeout=30).content == data
        slow = threading.Thread(target=requests.get, args=(base + "/slow",), kwargs={"timeout": 60})
        slow.start()
        while app.threads.count(app.threads[0]) < 3:  # the only worker is inside /slow
            time.sleep(0.01)
        with requests.Session() as session:
            for _ in range(3):
                assert session.get(base + "/kept", timeout=30).content == b"kept"
                assert session.get(base + "/file", timeout=30).content == data
        assert not app.release.is_set()
        app.release.set()
        slow.join(30)
    assert len(app.threads) == 3 and IO_THREAD not in app.threads  # the app behind the fast path: workers only


def test_pipelined_requests_are_answered_in_order(tmp_path: Path) -> None:
    app = App(tmp_path / "blob")
    app.path.write_bytes(b"file bytes")
    with served(app, threads=2) as base:
        assert requests.get(base + "/kept", timeout=30).content == b"kept"
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(b"".join(f"GET {p} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for p in ("/kept", "/file", "/kept")))
            got = b""
            while got.count(b"HTTP/1.1 200") < 3 or not got.endswith(b"kept"):
                chunk = sock.recv(65536)
                assert chunk, got
                got += chunk
    bodies = [part.rsplit(b"\r\n\r\n", 1)[-1] for part in got.split(b"HTTP/1.1 200 OK")[1:]]
    assert bodies == [b"kept", b"file bytes", b"kept"]
