"""deploy/nginx.conf with a real nginx in front of the real server: same answers, files from disk, live logs."""

from __future__ import annotations

import http.client
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from pathlib import Path

import requests

from gobuild import queueproto
from gobuild.spec import BuildSpec
from gobuild.targets import DEFAULT_TARGETS
from tests.conftest import GOVERSION
from tests.modproxy import ModuleProxy, _handler_for, hello_module
from tests.nginxproc import nginx
from tests.realserver import real_server

HOP = {"date", "expires", "server", "connection", "keep-alive", "transfer-encoding"}  # expires: now + max-age


@contextmanager
def gated_proxy(proxy: ModuleProxy, held: str, gate: threading.Event) -> Iterator[str]:
    """The module proxy, but requests for paths holding `held` wait for gate; yields its URL."""

    class Handler(_handler_for(proxy)):  # type: ignore[misc]
        def do_GET(self) -> None:
            if held in self.path:
                gate.wait(60)
            super().do_GET()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        gate.set()
        server.shutdown()
        server.server_close()


def answer(session: requests.Session, base: str, method: str, path: str,
           headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    headers = {"Host": "gobuild.test", **headers}  # pages that name the host name the same one
    r = session.request(method, base + path, headers=headers, allow_redirects=False, timeout=60)
    kept = {k.lower(): v for k, v in r.headers.items() if k.lower() not in HOP}
    return r.status_code, kept, r.content


def start_from(source: str, base: str, spec: BuildSpec) -> int:
    """The Start button's POST for spec, sent from the loopback address source (a client other than nginx)."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30, source_address=(source, 0))
    try:
        conn.request("POST", spec.link() + "start", headers={"Content-Length": "0"})
        return conn.getresponse().status
    finally:
        conn.close()


def spec_of(s: str) -> BuildSpec:
    return BuildSpec.parse(s, set(DEFAULT_TARGETS))


def test_nginx_answers_like_the_server_and_sends_files_from_disk(tmp_path: Path, server_cache: Path) -> None:
    spec = spec_of(f"example.com/hello@v1.0.0/linux-amd64-{GOVERSION}/")
    name = spec.download_filename()
    data = tmp_path / "data"
    for sub in ("direct", "behind"):
        (tmp_path / sub).mkdir()
    session = requests.Session()
    with ModuleProxy() as proxy:
        proxy.add("example.com/hello", "v1.0.0", hello_module("example.com/hello", "v1.0.0"))
        common = {"data_dir": str(data), "cache_dir": str(server_cache)}
        with real_server(tmp_path / "direct", proxy.url, **common) as direct:
            r = session.get(direct + spec.link() + name, allow_redirects=False, timeout=120)
            assert r.status_code == 307, r.text
            result = r.headers["Location"].rsplit("/", 1)[0] + "/"
            page = session.get(direct + result, timeout=30).text
            style = re.search(r'href="([^"]*style\.css\?v=[^"]*)"', page)
            assert style
            etag = session.get(direct + result + name + ".gz", timeout=30).headers["ETag"]
            requests_ = [("GET", p, {}) for p in (
                "/", result, result + "record", result + "proof", result + "buildinfo", result + "sbom.cdx.json",
                result + "log", result + name + ".gz", "/tlog/latest", "/tlog/lookup/" + str(spec),
                "/tlog/tile/8/0/000.p/1", "/tlog/tile/8/data/000.p/1", style.group(1), "/favicon.ico",
                result.replace(result.rstrip("/").rsplit("/", 1)[1], "0" * 43 + "=") + "record",
                "/tlog/tile/8/0/001", "//example.com/x")]
            for enc in ("gzip", "identity", "gzip;q=0"):
                requests_.append(("GET", result + name, {"Accept-Encoding": enc}))
                requests_.append(("HEAD", result + name, {"Accept-Encoding": enc}))
            requests_ += [("HEAD", result + name + ".gz", {}), ("HEAD", result + "record", {}),
                          ("GET", result + name + ".gz", {"If-None-Match": etag}),
                          ("GET", result + name, {"Range": "bytes=0-99", "Accept-Encoding": "identity"})]
            want = [answer(session, direct, *req) for req in requests_]
        assert want[0][0] == 200 and want[-2][0] == 304 and want[-1][0] == 206
        with real_server(tmp_path / "behind", proxy.url, accel_redirect_prefix="/_blobs/", **common) as app, \
                nginx(tmp_path / "nginx", app.removeprefix("http://"), data) as front:
            accel = session.get(app + result + name + ".gz", headers={"X-Gobuild-Accel": "1"}, timeout=30)
            assert accel.content == b"" and accel.headers["X-Accel-Redirect"].startswith("/_blobs/sha256/")
            direct_gz = session.get(app + result + name + ".gz", timeout=30)  # not through nginx: the file
            assert "X-Accel-Redirect" not in direct_gz.headers and direct_gz.content == want[7][2]
            assert session.get(front + accel.headers["X-Accel-Redirect"], timeout=30).status_code == 404  # internal
            upload = session.post(front + queueproto.UPLOAD_PATH + "gobuild-0", data=b"binary", timeout=30)
            assert upload.status_code == 404 and "build queue" not in upload.text  # nginx', not the app's
            for _ in range(2):  # the second time, immutable answers come from nginx' cache
                for req, wanted in zip(requests_, want, strict=True):
                    got = answer(session, front, *req)
                    assert got[0] == wanted[0], req
                    assert got[2] == wanted[2], req
                    assert got[1] == wanted[1], req
            assert any(p.is_file() for p in (tmp_path / "nginx" / "cache").rglob("*"))  # immutable answers kept


def test_nginx_streams_a_live_log_and_the_client_address_reaches_the_rate_limiter(
        tmp_path: Path, server_cache: Path) -> None:
    spec = spec_of(f"example.com/slow@v1.0.0/linux-amd64-{GOVERSION}/")
    gate = threading.Event()
    one_start_an_hour = {"windows": [3600], "ipv4_prefixes": [32], "ipv6_prefixes": [128],
                         "recent": [[1]], "old": [[1]]}
    with ModuleProxy() as proxy, gated_proxy(proxy, "example.com/slow/@v/v1.0.0.zip", gate) as goproxy:
        proxy.add("example.com/slow", "v1.0.0", hello_module("example.com/slow", "v1.0.0"))
        with real_server(tmp_path, goproxy, cache_dir=str(server_cache), shutdown_timeout=1,
                         trusted_proxies=["127.0.0.1"], rate_limits=one_start_an_hour) as app, \
                nginx(tmp_path / "nginx", app.removeprefix("http://"), tmp_path / "data") as front:
            r = requests.get(front + spec.link() + "events", stream=True, timeout=60)
            assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream")
            lines = r.iter_lines(decode_unicode=True)
            for line in lines:  # the build waits for its module at the gate: this came through unbuffered
                if line == "event: update":
                    break
            assert not gate.is_set()
            # Each client gets its one start, counted by the address nginx passes on (X-Forwarded-For from
            # a trusted proxy), not by nginx' own, which every client would share.
            arm64, i386 = spec.with_(goarch="arm64"), spec.with_(goarch="386")
            assert start_from("127.0.0.2", front, arm64) == 303
            assert start_from("127.0.0.2", front, i386) == 429
            assert start_from("127.0.0.3", front, i386) == 303
            gate.set()
            seen = []
            for line in lines:
                seen.append(line)
                if line == "event: end":
                    break
            assert "data: Success" in [next(lines)] and "event: log" in seen
            r.close()
