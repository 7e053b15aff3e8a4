"""Builds verified against other gobuild instances: real servers on 127.0.0.1 asking each other."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import waitress
from flask import Flask

from gobuild.services import build_services
from gobuild.spec import BuildSpec, Record, sum_from_digest
from gobuild.targets import DEFAULT_TARGETS
from gobuild.tlog import note
from gobuild.tlog.server import TransparencyLog
from gobuild.verify import Peers, PeerUnavailable, parse_peers
from gobuild.web import create_app
from tests.conftest import GOVERSION, make_config
from tests.modproxy import ModuleProxy, hello_module
from tests.realserver import free_port, stop_in_thread_server


@dataclass
class Instance:
    """A gobuild server on 127.0.0.1, its key and its app."""

    name: str
    port: int
    signer: str
    verifier_key: str
    app: Flask | None = None
    server: Any = None
    thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def peer(self) -> dict[str, str]:
        return {"key": self.verifier_key, "url": self.url + "/tlog"}

    def start(self, tmp: Path, proxy: ModuleProxy, cache: Path, data: str | None = None, **cfg: Any) -> Instance:
        keyfile = tmp / f"{self.name}.key"
        keyfile.write_text(self.signer)
        config = make_config(tmp / (data or self.name), proxy, cache_dir=str(cache), signer_key_file=str(keyfile),
                             listen=f"127.0.0.1:{self.port}", **cfg)
        self.app = create_app(config)
        self.server = waitress.create_server(self.app, host="127.0.0.1", port=self.port, threads=8)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.server is not None and self.thread is not None:
            stop_in_thread_server(self.server, self.thread)
            self.server = None

    def log_records(self) -> list[bytes]:
        tlog = self.app.extensions["gobuild"].tlog  # type: ignore[union-attr]
        return [tlog.record(i) for i in range(tlog.size())]


def instance(name: str) -> Instance:
    signer, verifier = note.generate_key(name)
    return Instance(name, free_port(), signer, verifier)


@pytest.fixture(scope="module")
def proxy() -> Iterator[ModuleProxy]:
    with ModuleProxy() as p:
        for v in ("v1.0.0", "v1.1.0", "v1.2.0", "v1.3.0", "v1.4.0", "v1.5.0", "v1.6.0"):
            p.add("example.com/hello", v, hello_module("example.com/hello", v, "hello " + v))
        yield p


@pytest.fixture
def cache(server_cache: Path) -> Path:
    return server_cache


@pytest.fixture
def instances() -> Iterator[list[Instance]]:
    started: list[Instance] = []
    yield started
    for i in started:
        i.stop()


def spec(version: str, target: str = "linux-amd64") -> BuildSpec:
    return BuildSpec.parse(f"example.com/hello@{version}/{target}-{GOVERSION}/", set(DEFAULT_TARGETS))


def fetch(inst: Instance, s: BuildSpec) -> requests.Response:
    return requests.get(inst.url + s.link() + s.download_filename(), timeout=300)


def test_mutual_pair_agrees_and_both_log(tmp_path: Path, proxy: ModuleProxy, cache: Path,
                                          instances: list[Instance]) -> None:
    a, b = instance("a.example"), instance("b.example")
    instances += [a.start(tmp_path, proxy, cache, verifiers=(b.peer,)),
                  b.start(tmp_path, proxy, cache, verifiers=(a.peer,))]
    s = spec("v1.0.0")
    r = fetch(a, s)
    assert r.status_code == 200, r.text
    got = sum_from_digest(hashlib.sha256(r.content).digest())
    record = Record(s, len(r.content), got).pack()
    assert a.log_records() == [record] and b.log_records() == [record]
    # The other way round settles too: B's build asks A, which asks nobody back.
    s2 = spec("v1.1.0")
    assert fetch(b, s2).status_code == 200
    assert a.log_records()[1:] == b.log_records()[1:] and len(a.log_records()) == 2
    status = requests.get(a.url + "/", timeout=10).text
    assert b.url in status and "last answered" in status


def test_mutual_pair_requested_at_once_settles(tmp_path: Path, proxy: ModuleProxy, cache: Path,
                                               instances: list[Instance]) -> None:
    a, b = instance("a.example"), instance("b.example")
    instances += [a.start(tmp_path, proxy, cache, verifiers=(b.peer,)),
                  b.start(tmp_path, proxy, cache, verifiers=(a.peer,))]
    s = spec("v1.2.0", "linux-arm64")
    results: dict[str, int] = {}

    def get(inst: Instance) -> None:
        results[inst.name] = fetch(inst, s).status_code

    threads = [threading.Thread(target=get, args=(i,)) for i in (a, b)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(240)
    assert results == {"a.example": 200, "b.example": 200}
    assert time.monotonic() - started < 200
    assert a.log_records() == b.log_records() and len(a.log_records()) == 1


def test_three_instances_agree(tmp_path: Path, proxy: ModuleProxy, cache: Path, instances: list[Instance]) -> None:
    a, b, c = instance("a.example"), instance("b.example"), instance("c.example")
    instances += [a.start(tmp_path, proxy, cache, verifiers=(b.peer, c.peer)),
                  b.start(tmp_path, proxy, cache, verifiers=(a.peer, c.peer)),
                  c.start(tmp_path, proxy, cache, verifiers=(a.peer, b.peer))]
    assert fetch(a, spec("v1.3.0")).status_code == 200
    assert a.log_records() == b.log_records() == c.log_records() and len(a.log_records()) == 1


def test_disagreement_fails_and_logs_nothing(tmp_path: Path, proxy: ModuleProxy, cache: Path,
                                             instances: list[Instance]) -> None:
    a, b = instance("a.example"), instance("b.example")
    instances += [a.start(tmp_path, proxy, cache, verifiers=(b.peer,)),
                  b.start(tmp_path, proxy, cache, environment=("GOSUMDB=off", "GOAMD64=v3"))]
    s = spec("v1.4.0")
    r = fetch(a, s)
    assert r.status_code == 503
    assert "build mismatches: we got" in r.text and b.url in r.text
    assert a.log_records() == []
    store = a.app.extensions["gobuild"].store  # type: ignore[union-attr]
    assert store.result(s) is None and store.failure(s) is None  # temporary: the next request tries again
    assert fetch(a, s).status_code == 503 and a.log_records() == []
    verifier = a.app.extensions["gobuild"].verifier  # type: ignore[union-attr]
    assert verifier.status[verifier.peers[0]].mismatches == 2


def test_peer_down_or_slow_is_a_temporary_failure(tmp_path: Path, proxy: ModuleProxy, cache: Path,
                                                  instances: list[Instance]) -> None:
    down = instance("down.example")  # never started: connection refused
    a = instance("a.example")
    instances.append(a.start(tmp_path, proxy, cache, verifiers=(down.peer,)))
    r = fetch(a, spec("v1.5.0"))
    assert r.status_code == 503 and f"build at verifier {down.url}/tlog failed" in r.text
    assert a.log_records() == []

    slow = socket.socket()  # accepts connections, never answers
    slow.bind(("127.0.0.1", 0))
    slow.listen()
    try:
        peer = {"key": instance("slow.example").verifier_key, "url": f"http://127.0.0.1:{slow.getsockname()[1]}/tlog"}
        b = instance("b.example")
        instances.append(b.start(tmp_path, proxy, cache, verifiers=(peer,), verify_timeout=1.0))
        started = time.monotonic()
        r = fetch(b, spec("v1.5.0"))
        assert r.status_code == 503 and f"build at verifier {peer['url']} failed" in r.text
        assert time.monotonic() - started < 60
        assert b.log_records() == []
    finally:
        slow.close()


def test_peer_whose_log_forks_is_caught(tmp_path: Path, proxy: ModuleProxy, cache: Path,
                                        instances: list[Instance]) -> None:
    a, p = instance("a.example"), instance("p.example")
    instances += [a.start(tmp_path, proxy, cache, verifiers=(p.peer,)), p.start(tmp_path, proxy, cache)]
    assert fetch(a, spec("v1.0.0")).status_code == 200
    # The peer now serves another history under the same key: record 0 is different.
    forked_cfg = make_config(tmp_path / "p-forked", proxy, cache_dir=str(cache),
                             signer_key_file=str(tmp_path / "p.example.key"))
    p.app.extensions["gobuild"] = build_services(forked_cfg)  # type: ignore[union-attr]
    p.app.extensions["gobuild"].tlog.append(  # type: ignore[union-attr]
        Record(spec("v1.0.0"), 1, "0N7e6zxGtHCObqNBDA_mXKv7-A9M").pack())
    r = fetch(a, spec("v1.1.0"))
    assert r.status_code == 503
    assert "SECURITY ERROR" in r.text
    assert len(a.log_records()) == 1


def test_verify_only_instance_serves_the_peers_binary(tmp_path: Path, proxy: ModuleProxy, cache: Path,
                                                      instances: list[Instance]) -> None:
    a, b = instance("a.example"), instance("b.example")
    instances += [b.start(tmp_path, proxy, cache),
                  a.start(tmp_path, proxy, tmp_path / "a-cache", verifiers=(b.peer,), build=False)]
    s = spec("v1.6.0")
    r = fetch(a, s)
    assert r.status_code == 200, r.text
    assert r.url.startswith(a.url)
    got = sum_from_digest(hashlib.sha256(r.content).digest())
    assert a.log_records() == b.log_records() == [Record(s, len(r.content), got).pack()]
    assert not (tmp_path / "a-cache").exists()  # a never ran go


def test_fixed_peer_key_is_not_blocked_by_state_of_the_wrong_one(tmp_path: Path) -> None:
    """An operator who first configured a wrong key for a peer, then fixed it, is not locked out."""
    from tests.test_tlog_client import LogServer

    signer, right = note.generate_key("p.example")
    _, wrong = note.generate_key("p.example")
    log = TransparencyLog(tmp_path / "p-log", signer)
    srv = LogServer(log)
    try:
        s = spec("v1.0.0")
        ours = Record(s, 10, "0N7e6zxGtHCObqNBDA_mXKv7-A9M")
        srv.add(str(s), ours.pack())
        state = tmp_path / "verifiers"

        def check(key: str) -> None:
            v = Peers(parse_peers([{"key": key, "url": srv.url}]), state, 10, "a.example")
            v.start(s).check(ours)

        with pytest.raises(PeerUnavailable):
            check(wrong)  # the wrong key's signature check fails, and its state stays behind
        check(right)
    finally:
        srv.close()
        log.close()


def test_peer_state_kept_by_name_moves_to_the_keyed_directory(tmp_path: Path) -> None:
    """State written before it was keyed by the whole key keeps its trust history."""
    _, key = note.generate_key("p.example")
    peer = parse_peers([{"key": key, "url": "http://127.0.0.1:1/tlog"}])[0]
    old = tmp_path / "p.example" / "config"
    old.mkdir(parents=True)
    (old / "key").write_text(key + "\n")
    v = Peers([peer], tmp_path, 10, "a.example")
    assert v._state_dir(peer) == tmp_path / peer.state_name
    assert (tmp_path / peer.state_name / "config" / "key").read_text() == key + "\n"
    assert not (tmp_path / "p.example").exists()
