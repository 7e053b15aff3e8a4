"""File answers leave gobuild's waitress through os.sendfile (serving.py), byte for byte."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from waitress import wasyncore

from gobuild import serving


def file_app(path: Path, skip: int) -> Any:
    """A WSGI app sending path from byte skip on through the server's wsgi.file_wrapper."""

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        f = path.open("rb")
        f.seek(skip)
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(path.stat().st_size - skip))])
        return environ["wsgi.file_wrapper"](f, 8192)

    return app


@contextmanager
def served(app: Any) -> Iterator[str]:
    server = serving.create_server(app, "127.0.0.1", 0, 4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        server.task_dispatcher.shutdown(timeout=5)
        wasyncore.close_all(server._map)
        thread.join(5)


@pytest.mark.parametrize("skip", [0, 12345])
def test_file_answers_are_sent_with_sendfile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, skip: int) -> None:
    data = os.urandom(5 << 20)
    path = tmp_path / "blob"
    path.write_bytes(data)
    calls: list[int] = []
    real = os.sendfile

    def counted(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        calls.append(count)
        return real(out_fd, in_fd, offset, count)

    monkeypatch.setattr(os, "sendfile", counted)
    with served(file_app(path, skip)) as base, requests.Session() as session:
        for _ in range(3):  # keep-alive: each answer starts where its file does, the next is whole too
            r = session.get(base + "/", timeout=30)
            assert r.status_code == 200 and r.content == data[skip:]
        with requests.get(base + "/", stream=True, timeout=30) as slow:  # a reader slower than the socket
            assert b"".join(slow.iter_content(4096)) == data[skip:]
    assert calls
