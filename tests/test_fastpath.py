"""The fast path (gobuild/web/fastpath.py) answers exactly what Flask answers, for every URL kind it keeps."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import EnvironBuilder
from werkzeug.wsgi import FileWrapper

from gobuild.spec import BuildSpec, Record, sum_from_digest
from gobuild.store import Result, Store
from gobuild.targets import DEFAULT_TARGETS
from gobuild.tlog.server import TransparencyLog
from gobuild.web import create_app
from gobuild.web.current import services
from gobuild.web.fastpath import FastPath
from gobuild.web.pages import VERSIONS_TTL, VersionsCache
from tests.conftest import GOVERSION, make_config
from tests.modproxy import ModuleProxy, hello_module

Answer = tuple[str, list[tuple[str, str]], bytes]


@pytest.fixture(scope="module")
def proxy() -> Iterator[ModuleProxy]:
    with ModuleProxy() as proxy:
        proxy.add("example.com/hello", "v1.0.0", hello_module("example.com/hello", "v1.0.0"))
        yield proxy


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, server_cache: Path,
          proxy: ModuleProxy) -> Iterator[tuple[Flask, BuildSpec, str]]:
    """An app with one finished build and 300 records in its log (so tile 8/0/000 is full)."""
    app = create_app(make_config(tmp_path_factory.mktemp("data"), proxy, cache_dir=str(server_cache)))
    spec = BuildSpec.parse(f"example.com/hello@v1.0.0/linux-amd64-{GOVERSION}/", set(DEFAULT_TARGETS))
    client = app.test_client()
    r = client.get(spec.link() + spec.download_filename())
    assert r.status_code == 307, r.get_data(as_text=True)
    location = r.headers["Location"]
    with app.app_context():
        tl = services().tlog
        i = 0
        while tl.size() < 300:
            fake = BuildSpec(f"example.com/synthetic/m{i}", "v1.0.0", "/", "linux", "amd64", GOVERSION)
            tl.append(Record(fake, 1_000_000 + i, sum_from_digest(hashlib.sha256(bytes([i % 256, i // 256]))
                                                                 .digest())).pack())
            i += 1
    yield app, spec, location.rsplit("/", 1)[0] + "/"


def call(app: Any, path: str, method: str = "GET", headers: dict[str, str] | None = None) -> Answer:
    """One request straight to a WSGI app, with a file_wrapper like waitress has; body read whole."""
    env = EnvironBuilder(path=path, method=method, headers=headers or {}).get_environ()
    env["wsgi.file_wrapper"] = FileWrapper
    seen: list[tuple[str, list[tuple[str, str]]]] = []
    body = app(env, lambda status, hs, exc=None: seen.append((status, list(hs))))
    try:
        data = b"".join(body)
    finally:
        getattr(body, "close", lambda: None)()
    return seen[-1][0], [(k, v) for k, v in seen[-1][1] if k != "Date"], data  # the server sends a fresh Date


def urls(app: Flask, spec: BuildSpec, result: str) -> list[tuple[str, str, dict[str, str]]]:
    name = spec.download_filename()
    style = re.search(r'href="([^"]*style\.css\?v=[^"]*)"', call(app, result)[2].decode())
    assert style, "the result page links a versioned style sheet"
    kinds = [result + "record", result + "proof", result + "buildinfo", result + "sbom.cdx.json",
             result + name + ".gz", "/tlog/latest", "/tlog/tile/8/0/000", "/tlog/tile/8/data/000",
             style.group(1)]
    out: list[tuple[str, str, dict[str, str]]] = []
    for method in ("GET", "HEAD"):
        out += [(method, u, {}) for u in kinds]
        for enc in ("gzip", "identity", "gzip;q=0", "br, gzip;q=0.5"):  # the binary's gzip negotiation
            out.append((method, result + name, {"Accept-Encoding": enc}))
        for accept in ("application/json", "application/json, text/html;q=0.5"):  # the result's JSON twin
            out.append((method, result, {"Accept": accept}))
        out.append((method, result, {}))  # the result page, kept while current (pagestate.py)
    return out


def test_fast_path_answers_like_flask(built: tuple[Flask, BuildSpec, str]) -> None:
    app, spec, result = built
    fast = app.wsgi_app
    assert isinstance(fast, FastPath)
    flask_only = fast.app
    checked = 0
    for method, url, headers in urls(app, spec, result):
        want = call(flask_only, url, method, headers)
        assert want[0] == "200 OK", (url, want[0])
        first = call(fast, url, method, headers)  # fills the cache
        kept = len(fast)
        again = call(fast, url, method, headers)  # from the cache
        assert len(fast) == kept > 0, url
        assert first == want == again, (method, url, headers)
        checked += 1
    assert checked == 32
    with app.app_context():
        places = [(services().store.root / "blobs").resolve(), Path(app.static_folder or "/nonexistent").resolve()]
    files = [Path(e.path).resolve() for e in fast._entries.values() if e.path is not None]
    assert files and all(any(f.is_relative_to(place) for place in places) for f in files), files


def test_paths_out_of_place_are_never_kept(built: tuple[Flask, BuildSpec, str]) -> None:
    app, _, result = built
    fast = app.wsgi_app
    assert isinstance(fast, FastPath)
    kept = set(fast._entries)
    for path in ("/static/../../../../etc/passwd", "/static/%2e%2e/%2e%2e/etc/passwd", "/static/..%2fapp.py",
                 result + "../../../../../etc/passwd", result + "..%2f..%2fconfig.json", "/tlog/tile/8/0/../../../x"):
        for _ in range(2):
            status, _, body = call(fast, path)
            assert not status.startswith("200") and b"root:" not in body, path
    assert set(fast._entries) == kept


def test_kept_answers_are_served_without_flask(built: tuple[Flask, BuildSpec, str]) -> None:
    app, spec, result = built
    fast = app.wsgi_app
    assert isinstance(fast, FastPath)
    url = result + "record"
    want = call(fast, url)
    inner, fast.app = fast.app, lambda env, sr: pytest.fail(f"Flask asked for {env['PATH_INFO']}")
    try:
        assert call(fast, url) == want
        assert call(fast, result + spec.download_filename() + ".gz")[0] == "200 OK"
    finally:
        fast.app = inner


def test_what_changes_or_depends_on_more_goes_to_flask(built: tuple[Flask, BuildSpec, str]) -> None:
    app, spec, result = built
    fast = app.wsgi_app
    assert isinstance(fast, FastPath)
    gz = result + spec.download_filename() + ".gz"
    etag = dict(call(fast, gz)[1])["ETag"]
    asked: list[str] = []
    inner = fast.app

    def counting(env: Any, sr: Any) -> Any:
        asked.append(env["PATH_INFO"])
        return inner(env, sr)

    fast.app = counting
    try:
        assert call(fast, gz, headers={"If-None-Match": etag})[0] == "304 NOT MODIFIED"
        assert call(fast, gz, headers={"Range": "bytes=0-3"})[0] == "206 PARTIAL CONTENT"
        bad = result.replace(result.rstrip("/").rsplit("/", 1)[1], "0" * 43 + "=")
        for _ in range(2):
            assert call(fast, bad + "record")[0].startswith("404")
            assert call(fast, "/tlog/tile/8/0/001")[0].startswith("404")  # beyond the log
            assert call(fast, "/tlog/tile/8/0/001.p/5")[0] == "200 OK"  # partial: changes as the log grows
        assert len(asked) == 8
        for _ in range(2):  # the JSON twin and the HTML page of the same URL are kept apart, never served crossed
            assert dict(call(fast, result, headers={"Accept": "application/json;q=0.9"})[1])["Content-Type"] \
                == "application/json"
            for accept in ("text/html", "*/*", "application/json;q=0.1, text/html"):
                assert dict(call(fast, result, headers={"Accept": accept})[1])["Content-Type"] \
                    .startswith("text/html")
        assert len(asked) == 8 + 1 + 3
        head = call(fast, "/tlog/latest")
        assert call(fast, "/tlog/latest") == head
        with app.app_context():
            fake = BuildSpec("example.com/synthetic/grown", "v1.0.0", "/", "linux", "amd64", GOVERSION)
            services().tlog.append(Record(fake, 2_000_000, sum_from_digest(b"\1" * 32)).pack())
        grown = call(fast, "/tlog/latest")
        assert grown != head and grown == call(fast, "/tlog/latest") == call(inner, "/tlog/latest")
    finally:
        fast.app = inner


def _served_count(app: Flask, route: str) -> float:
    with app.app_context():
        value = services().metrics.registry.get_sample_value("gobuild_http_requests_total",
                                                             {"route": route, "status": "200"})
    return value or 0.0


def test_kept_answers_count_in_the_metrics(built: tuple[Flask, BuildSpec, str]) -> None:
    app, spec, result = built
    fast = app.wsgi_app
    urls_by_route = {"result": [result + "record", result + spec.download_filename() + ".gz"],
                     "tlog": ["/tlog/tile/8/0/000", "/tlog/latest"]}
    for route, paths in urls_by_route.items():
        for path in paths:
            call(fast, path)  # kept from here on
            before = _served_count(app, route)
            for _ in range(3):
                assert call(fast, path)[0] == "200 OK"
            assert _served_count(app, route) == before + 3, path


def test_a_kept_download_marks_the_binary_used(built: tuple[Flask, BuildSpec, str]) -> None:
    """Eviction's LRU reads when a binary was last downloaded from its gzip blob's atime."""
    app, spec, result = built
    fast = app.wsgi_app
    with app.app_context():
        s = services()
        done = s.store.result(spec)
        assert done is not None
        gz = s.store.blob_path(done.binary_gz)
    for path, headers in ((result + spec.download_filename() + ".gz", {}),
                          (result + spec.download_filename(), {"Accept-Encoding": "gzip"}),
                          (result + spec.download_filename(), {"Accept-Encoding": "identity"})):
        call(fast, path, headers=headers)  # kept from here on
        long_ago = 1_000_000_000
        os.utime(gz, ns=(long_ago * 10**9, gz.stat().st_mtime_ns))
        with app.app_context():
            services().cache._entries[str(spec)].used = long_ago
        assert call(fast, path, headers=headers)[0] == "200 OK"
        assert gz.stat().st_atime > long_ago + 10**8, path
        with app.app_context():
            assert services().cache._entries[str(spec)].used > long_ago + 10**8, path


class Counting:
    """A WSGI app answering every GET with the same immutable 200 (with extra headers), counting its calls."""

    def __init__(self, *extra: tuple[str, str]) -> None:
        self.calls = 0
        self.extra = list(extra)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.calls += 1
        start_response("200 OK", [("Content-Length", "2"), ("Cache-Control", "public, max-age=31536000, immutable"),
                                  *self.extra])
        return [b"ok"]


def test_an_accel_redirect_answer_is_kept_while_its_blob_is_on_disk(
        tmp_path: Path, server_cache: Path, proxy: ModuleProxy) -> None:
    # Behind nginx the app answers a download with only headers (nginx sends the blob): kept like any immutable
    # answer, but only while the blob it names is there, so that a request after an eviction reaches the app,
    # which rebuilds the binary, instead of nginx answering 404 for the blob.
    app = create_app(make_config(tmp_path / "data", proxy, cache_dir=str(server_cache), accel_redirect_prefix="/_b/"))
    spec = BuildSpec.parse(f"example.com/hello@v1.0.0/linux-amd64-{GOVERSION}/", set(DEFAULT_TARGETS))
    r = app.test_client().get(spec.link() + spec.download_filename())
    assert r.status_code == 307, r.get_data(as_text=True)
    url = r.headers["Location"] + ".gz"
    fast = app.wsgi_app
    assert isinstance(fast, FastPath)
    nginx = {"X-Gobuild-Accel": "1"}  # what deploy/nginx.conf sets on every request it passes on
    first = call(fast, url, headers=nginx)
    assert first[0] == "200 OK" and dict(first[1])["X-Accel-Redirect"].startswith("/_b/sha256/")
    binary = url.removesuffix(".gz")
    variants = {enc: call(fast, binary, headers={"Accept-Encoding": enc} | nginx) for enc in ("gzip", "identity")}
    with app.app_context():
        s = services()
        done = s.store.result(spec)
        assert done is not None
    named = {enc: dict(answer[1])["X-Accel-Redirect"].rsplit("/", 1)[1] for enc, answer in variants.items()}
    assert named == {"gzip": done.binary_gz, "identity": done.binary}  # each negotiation kept with its own blob
    inner, fast.app = fast.app, lambda env, sr: pytest.fail(f"Flask asked for {env['PATH_INFO']}")
    try:
        with app.app_context():
            s.cache._entries[str(spec)].used = 1_000_000_000
        assert call(fast, url, headers=nginx) == first
        for enc, answer in variants.items():
            assert call(fast, binary, headers={"Accept-Encoding": enc} | nginx) == answer
        with app.app_context():
            assert s.cache._entries[str(spec)].used > 1_100_000_000  # a kept answer is a download too (LRU)
    finally:
        fast.app = inner
    with app.app_context():
        s.store.delete_blob(done.binary_gz)  # evicted (by another process: this one's cache is not told)
        gz = s.store.blob_path(done.binary_gz)
    rebuilt = call(fast, url, headers=nginx)  # the app rebuilt it: the same answer but for the new file's Last-Modified
    assert gz.is_file()
    assert [h for h in rebuilt[1] if h[0] != "Last-Modified"] == [h for h in first[1] if h[0] != "Last-Modified"]
    direct = call(fast, url)  # a client of gobuild's own port, not through nginx: the file itself, kept or not
    assert direct[0] == "200 OK" and direct[2] == gz.read_bytes() and "X-Accel-Redirect" not in dict(direct[1])
    assert call(fast, url) == direct


def test_a_long_key_is_never_kept() -> None:
    # Keys count against memory too: a client must not fill it with junk query strings or headers.
    inner = Counting()
    fast = FastPath(inner)  # type: ignore[arg-type]
    call(fast, "/r/record?" + "x" * 5000)
    call(fast, "/r/record", headers={"Accept": "text/plain;" + "q" * 5000})
    assert len(fast) == 0
    call(fast, "/r/record")
    call(fast, "/r/record")
    assert inner.calls == 3 and len(fast) == 1


def _href(page: bytes, text: str) -> str:
    """The href of the link column entry named text."""
    found = re.search(r'<a href="([^"]*)"[^>]*>' + re.escape(text) + "<", page.decode())
    assert found, text
    return found.group(1)


def _publish(store: Store, tl: TransparencyLog | None, done: Result, other: BuildSpec) -> str:
    """Store (and, with tl, log) a build of other with done's files, as a build would; its result URL."""
    fake = replace(done, spec=str(other), record_number=None)
    if tl is not None:
        tl.append(Record(other, fake.size, fake.sum).pack())
    store.put_result(fake)
    return other.result_link(fake.sum)


def test_a_kept_result_page_shows_a_new_build_at_once(built: tuple[Flask, BuildSpec, str]) -> None:
    """A build published by this process or (logged) by another on the same data dir: the kept page is
    dropped on the next request and rendered anew, as Flask answers now."""
    app, spec, result = built
    fast = app.wsgi_app
    assert isinstance(fast, FastPath)
    arm, mips = spec.with_(goarch="arm64"), spec.with_(goarch="mips64")
    with app.app_context():
        s = services()
        done = s.store.result(spec)
        assert done is not None
        other_process = Store(s.store.root)
    page = call(fast, result)
    assert call(fast, result) == page and _href(page[2], "linux/arm64") == arm.link()
    with app.app_context():
        url = _publish(services().store, None, done, arm)  # this process: in the store, not yet in the log
    page = call(fast, result)
    assert _href(page[2], "linux/arm64") == url and page == call(fast.app, result)
    assert _href(page[2], "linux/mips64") == mips.link()
    with app.app_context():
        url = _publish(other_process, services().tlog, done, mips)
    page = call(fast, result)
    assert _href(page[2], "linux/mips64") == url and page == call(fast, result)


def test_a_kept_result_page_names_a_new_version_when_the_list_is_refetched(
        built: tuple[Flask, BuildSpec, str], proxy: ModuleProxy) -> None:
    """A new module version shows once the versions cache fetches the list again (its TTL), as before."""
    app, _, result = built
    fast = app.wsgi_app
    assert isinstance(fast, FastPath)
    now = [1000.0]
    with app.app_context():
        s = services()
        s.versions = VersionsCache(s.proxy.list, clock=lambda: now[0])
    call(fast, result)
    page = call(fast, result)
    assert b"v1.1.0" not in page[2]
    proxy.add("example.com/hello", "v1.1.0", hello_module("example.com/hello", "v1.1.0"))
    now[0] += VERSIONS_TTL / 2
    assert call(fast, result) == page == call(fast.app, result)  # the list is not fetched again yet
    now[0] += VERSIONS_TTL
    page = call(fast, result)
    assert b"A newer version of this module is available: v1.1.0" in page[2]
    assert page == call(fast, result) == call(fast.app, result)
