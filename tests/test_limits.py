"""Connections and threads (issue 10): idle sockets, slowloris, requests waiting for builds and queued
builds cannot take the server's threads or sockets from everyone else."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask

from gobuild import serving
from gobuild.builds import Coordinator
from gobuild.spec import BuildSpec
from gobuild.store import Store
from gobuild.web import create_app
from tests.conftest import GOVERSION, make_config
from tests.modproxy import ModuleProxy, hello_module
from tests.realserver import in_thread


@contextmanager
def served(app: Flask, threads: int) -> Iterator[str]:
    """The app behind gobuild's own waitress setup on a free port of 127.0.0.1."""
    with in_thread(serving.create_server(app, "127.0.0.1", 0, threads)) as base:
        yield base


@pytest.fixture(scope="module")
def proxy() -> Iterator[ModuleProxy]:
    with ModuleProxy() as p:
        for name in ("slow1", "slow2", "slow3"):
            p.add(f"example.com/{name}", "v1.0.0", hello_module(f"example.com/{name}", "v1.0.0"))
        yield p


@pytest.fixture(autouse=True)
def builds_end_with_their_test() -> Iterator[None]:
    """A build a test leaves compiling starts threads (its own, go's timers) inside the next test's count."""
    yield
    for thread in threading.enumerate():
        if thread.name.startswith("build "):
            thread.join(120)
    assert [t.name for t in threading.enumerate() if t.name.startswith("build ")] == []


@pytest.fixture
def app(proxy: ModuleProxy, tmp_path: Path, server_cache: Path) -> Flask:
    return create_app(make_config(tmp_path / "data", proxy, cache_dir=str(server_cache), threads=4,
                                  max_waiting=1, max_builds=1))


def _spec(name: str) -> BuildSpec:
    return BuildSpec(f"example.com/{name}", "v1.0.0", "/", "linux", "amd64", GOVERSION)


def test_requests_waiting_for_builds_are_capped_with_retry_after(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    services = app.extensions["gobuild"]
    gate = threading.Event()
    real = services.builder._build

    def slow_build(spec: BuildSpec, out: Any) -> Any:
        gate.wait(60)
        return real(spec, out)

    monkeypatch.setattr(services.builder, "_build", slow_build)
    first, second = _spec("slow1"), _spec("slow2")
    answers: list[int] = []
    with served(app, 4) as base:
        waiter = threading.Thread(target=lambda: answers.append(requests.get(
            base + first.link() + first.download_filename(), allow_redirects=False, timeout=120).status_code))
        waiter.start()
        deadline = time.monotonic() + 10
        while not services.waits.full:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        started = time.monotonic()
        r = requests.get(base + second.link() + second.download_filename(), allow_redirects=False, timeout=10)
        assert r.status_code == 503 and int(r.headers["Retry-After"]) > 0, r.text
        assert time.monotonic() - started < 2
        left = services.coordinator.get(second)
        assert left is not None  # the build itself goes on
        assert requests.get(base + "/", timeout=5).status_code == 200
        gate.set()
        waiter.join(120)
        assert left.done.wait(120)
    assert answers == [307]


class _StubBuilder:
    """A builder whose builds block until released."""

    def __init__(self, root: Path) -> None:
        self.store = Store(root)
        self.release = threading.Event()

    def build(self, spec: BuildSpec, out: Any, chain: Any = (), compiled: Any = None) -> Any:
        self.release.wait(60)
        raise RuntimeError("stub")


def test_queued_builds_hold_no_thread(tmp_path: Path) -> None:
    builder = _StubBuilder(tmp_path / "data")
    coordinator = Coordinator(builder, max_builds=2)  # type: ignore[arg-type]
    before = threading.active_count()
    jobs = [coordinator.start(_spec("slow1").with_(goarch=arch, goversion=f"go1.{n}.0"))
            for n in range(21, 46) for arch in ("amd64", "arm64")]
    assert threading.active_count() - before <= 2
    assert sum(1 for j in jobs if j.state == "running") == 2
    builder.release.set()
    for job in jobs:
        assert job.done.wait(30)
    assert threading.active_count() - before <= 2


def test_the_build_queue_is_bounded(tmp_path: Path) -> None:
    from gobuild.failures import Busy

    builder = _StubBuilder(tmp_path / "data")
    coordinator = Coordinator(builder, max_builds=1, max_queued=3)  # type: ignore[arg-type]
    specs = [_spec("slow1").with_(goversion=f"go1.{n}.0") for n in range(21, 26)]
    jobs = [coordinator.start(spec) for spec in specs[:4]]  # one running, three queued
    assert coordinator.start(specs[0]) is jobs[0]  # joining a known build is always fine
    with pytest.raises(Busy):
        coordinator.start(specs[4])
    builder.release.set()
    for job in jobs:
        assert job.done.wait(30)
    assert coordinator.start(specs[4]).done.wait(30)


def test_idle_connections_do_not_lock_anyone_out(app: Flask) -> None:
    serving.raise_open_files_limit()
    with served(app, 4) as base, ExitStack() as stack:
        port = int(base.rsplit(":", 1)[1])
        for _ in range(300):  # waitress' default connection_limit is 100
            s = stack.enter_context(socket.create_connection(("127.0.0.1", port)))
            s.sendall(b"G")
        started = time.monotonic()
        assert requests.get(base + "/robots.txt", timeout=10).status_code == 200
        assert time.monotonic() - started < 2


def test_slowloris_is_closed_after_the_header_timeout(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serving, "HEADER_TIMEOUT", 1)
    monkeypatch.setattr(serving, "CLEANUP_INTERVAL", 1)
    with served(app, 4) as base:
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.settimeout(0.2)
            s.sendall(b"GET / HTTP/1.1\r\n")
            closed_after = None
            started = time.monotonic()
            while time.monotonic() - started < 10:
                try:
                    s.sendall(b"X")  # one byte of a header every 0.2 s: never idle, never done
                    if s.recv(1) == b"":
                        closed_after = time.monotonic() - started
                        break
                except TimeoutError:
                    continue
                except OSError:
                    closed_after = time.monotonic() - started
                    break
            assert closed_after is not None and closed_after < 5
