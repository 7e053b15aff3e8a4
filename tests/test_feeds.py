"""Atom feeds and badges against the real server; the log tail across tiles on a log of its own."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from gobuild.spec import BuildSpec, Record, sum_of
from gobuild.tlog import note
from gobuild.tlog.server import TransparencyLog
from gobuild.web.feeds import log_tail
from tests.conftest import GOVERSION
from tests.modproxy import ModuleProxy, hello_module
from tests.realserver import real_server

ATOM = "{http://www.w3.org/2005/Atom}"
BUILDS = [f"/example.com/hello@v1.0.0/linux-amd64-{GOVERSION}/hello-v1.0.0-{GOVERSION}",
          f"/example.com/multi@v0.3.0/cmd/alpha/linux-amd64-{GOVERSION}/alpha-v0.3.0-{GOVERSION}",
          f"/example.com/hello@v1.1.0/linux-amd64-{GOVERSION}/hello-v1.1.0-{GOVERSION}"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, server_cache: Path) -> Iterator[tuple[str, list[str]]]:
    """A real server that built BUILDS in that order; yields its URL and the result URLs."""
    with ModuleProxy() as proxy, real_server(tmp_path_factory.mktemp("feeds"), proxy.url,
                                             cache_dir=str(server_cache)) as base:
        proxy.add("example.com/hello", "v1.0.0", hello_module("example.com/hello", "v1.0.0"))
        proxy.add("example.com/hello", "v1.1.0", hello_module("example.com/hello", "v1.1.0", "hi"))
        proxy.add("example.com/multi", "v0.3.0", {
            "go.mod": "module example.com/multi\n\ngo 1.22\n",
            "cmd/alpha/main.go": "package main\n\nfunc main() {}\n",
            "cmd/beta/main.go": "package main\n\nfunc main() {}\n"})
        results = []
        for path in BUILDS:
            r = requests.get(base + path, timeout=300)
            assert r.status_code == 200, r.text
            results.append(r.url.rsplit("/", 1)[0] + "/")
        yield base, results


def entries(base: str, path: str) -> list[tuple[str, str]]:
    r = requests.get(base + path, timeout=30)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/atom+xml")
    feed = ET.fromstring(r.content)
    assert feed.tag == f"{ATOM}feed"
    return [(e.findtext(f"{ATOM}title") or "", e.find(f"{ATOM}link").get("href") or "")  # type: ignore[union-attr]
            for e in feed.findall(f"{ATOM}entry")]


def test_instance_feed_lists_every_build_newest_first(server: tuple[str, list[str]]) -> None:
    base, results = server
    got = entries(base, "/builds.atom")
    assert [link for _, link in got] == results[::-1]
    assert got[0][0] == f"example.com/hello@v1.1.0 linux/amd64 {GOVERSION}"
    assert got[1][0] == f"example.com/multi/cmd/alpha@v0.3.0 linux/amd64 {GOVERSION}"
    for _, link in got:
        assert requests.get(link, timeout=30).status_code == 200
    assert 'href="/builds.atom"' in requests.get(base + "/", timeout=30).text


def test_module_feed_lists_only_that_module(server: tuple[str, list[str]]) -> None:
    base, results = server
    assert [link for _, link in entries(base, "/example.com/hello/builds.atom")] == [results[2], results[0]]
    assert entries(base, "/example.com/nothing/builds.atom") == []
    assert requests.get(base + "/example.com/x!y/builds.atom", timeout=30).status_code == 404


@pytest.mark.parametrize("path, value", [
    ("/example.com/hello@latest/badge.svg", "v1.1.0"),
    ("/example.com/multi@latest/cmd/alpha/badge.svg", "v0.3.0"),
    ("/example.com/multi@latest/cmd/beta/badge.svg", "not built"),
])
def test_badge_shows_the_newest_built_version(server: tuple[str, list[str]], path: str, value: str) -> None:
    base, _ = server
    r = requests.get(base + path, timeout=30)
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/svg+xml; charset=utf-8"
    svg = ET.fromstring(r.content)
    assert [t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")] == ["gobuild", value]


def test_badge_needs_latest_and_result_page_shows_the_snippet(server: tuple[str, list[str]]) -> None:
    base, results = server
    assert requests.get(base + "/example.com/hello@v1.0.0/badge.svg", timeout=30).status_code == 404
    page = requests.get(results[1], timeout=30).text
    assert '<img src="/example.com/multi@latest/cmd/alpha/badge.svg"' in page
    assert '<a href="/example.com/multi/builds.atom">' in page


def test_log_tail_reads_back_across_tiles(tmp_path: Path) -> None:
    skey, _ = note.generate_key("tail.example")
    with TransparencyLog(tmp_path, skey) as tlog:
        for i in range(600):
            spec = BuildSpec("example.com/m", f"v1.0.{i}", "/", "linux", "amd64", GOVERSION)
            tlog.append(Record(spec, 10 + i, sum_of(str(i).encode())).pack())
        numbers = [n for n, _ in log_tail(tlog)]
        assert numbers == list(range(599, -1, -1))
        tail = list(log_tail(tlog, limit=300))
        assert [n for n, _ in tail] == list(range(599, 299, -1)) and tail[0][1].spec.version == "v1.0.599"
