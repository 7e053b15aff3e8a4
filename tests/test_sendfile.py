"""File answers leave gobuild's waitress through os.sendfile (serving.py), byte for byte."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from gobuild import serving
from tests.realserver import in_thread


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
    with in_thread(serving.create_server(app, "127.0.0.1", 0, 4)) as base:
        yield base


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
    assert calls


def test_a_client_slower_than_the_socket_gets_every_byte(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The socket takes only part of the file while the client does not read: sendfile returns less than asked
    # (or would block), and the answer must go on from exactly where the socket stopped when it drains.
    data = os.urandom(16 << 20)  # more than loopback's largest send buffer (4 MiB) and the client's window
    path = tmp_path / "blob"
    path.write_bytes(data)
    short: list[tuple[int, int]] = []
    real = os.sendfile

    def watched(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        try:
            n = real(out_fd, in_fd, offset, count)
        except BlockingIOError:
            short.append((count, 0))
            raise
        if n < count:
            short.append((count, n))
        return n

    monkeypatch.setattr(os, "sendfile", watched)
    with served(file_app(path, 0)) as base:
        host, port = base.removeprefix("http://").split(":")
        with socket.socket() as client:
            client.settimeout(30)
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window, set before connecting
            client.connect((host, int(port)))
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            time.sleep(1.0)  # not reading: the server's socket fills
            received = bytearray()
            while chunk := client.recv(1 << 16):
                received += chunk
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and body == data
    assert short, "the socket took every sendfile call whole: the partial-send path was not exercised"
