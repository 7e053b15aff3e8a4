"""Tests of gobuild.goproxy against tests.modproxy, and of tests.modproxy against the real go command."""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import threading
import time
import zipfile
from collections.abc import Iterator

import pytest
import requests

from gobuild import goproxy, module
from gobuild.goproxy import GoProxyClient, ModuleNotFound, ProxyRefused, ProxyUnavailable, VersionInfo
from tests.modproxy import ModuleProxy, hello_module, modproxy  # noqa: F401  (modproxy is a fixture)

GO = "/usr/local/go/bin/go"


def add_hello(proxy: ModuleProxy, path: str, version: str, message: str = "hello", time: str | None = None) -> None:
    """Add a hello module version to proxy."""
    proxy.add(path, version, hello_module(path, version, message), time=time)


# ---------------------------------------------------------------------------- GOPROXY parsing


@pytest.mark.parametrize(
    "value,want",
    [
        ("http://127.0.0.1:1", [("http://127.0.0.1:1", False)]),
        ("http://a.test/,http://b.test", [("http://a.test", False), ("http://b.test", False)]),
        ("http://a.test|http://b.test", [("http://a.test", True), ("http://b.test", False)]),
        ("a.test|b.test/sub/,direct", [("https://a.test", True), ("https://b.test/sub", False)]),
        (" http://a.test , ,http://b.test", [("http://a.test", False), ("http://b.test", False)]),
        ("http://a.test,direct,http://b.test", [("http://a.test", False)]),
        ("http://a.test,off,http://b.test", [("http://a.test", False), ("off", False)]),
        ("off", [("off", False)]),
    ],
)
def test_parse_goproxy(value: str, want: list[tuple[str, bool]]) -> None:
    assert goproxy.parse_goproxy(value) == want


@pytest.mark.parametrize("value", ["", ",", " | ", "direct", "direct,http://a.test", "ftp://a.test", "noscheme", "http://"])
def test_parse_goproxy_invalid(value: str) -> None:
    with pytest.raises(ValueError):
        goproxy.parse_goproxy(value)


@pytest.mark.parametrize(
    "value,want",
    [
        ("http://a.test/,direct", "http://a.test"),
        ("a.test|b.test,direct", "https://a.test|https://b.test"),
        ("http://a.test,http://b.test|http://c.test", "http://a.test,http://b.test|http://c.test"),
        ("http://a.test,off", "http://a.test,off"),
    ],
)
def test_goproxy_for_go(value: str, want: str) -> None:
    assert goproxy.goproxy_for_go(value) == want


# ---------------------------------------------------------------------------- client basics


@pytest.fixture
def client(modproxy: ModuleProxy) -> Iterator[GoProxyClient]:  # noqa: F811
    """A client of the test proxy with a short timeout."""
    with GoProxyClient(modproxy.url, timeout=5) as c:
        yield c


def test_list(modproxy: ModuleProxy, client: GoProxyClient) -> None:  # noqa: F811
    for v in ["v1.10.0", "v1.2.0", "v1.2.0-rc.1", "v0.0.0-20240102030405-abcdefabcdef"]:
        add_hello(modproxy, "example.com/hello", v)
    assert client.list("example.com/hello") == ["v1.2.0-rc.1", "v1.2.0", "v1.10.0"]


def test_list_drops_invalid_lines(modproxy: ModuleProxy, client: GoProxyClient) -> None:  # noqa: F811
    modproxy.serve(
        "/example.com/odd/@v/list",
        b"v1.0.0\njunk\n\nv0.0.0-20240102030405-abcdefabcdef\nv1.1.0 2024-01-01T00:00:00Z\nv1.0\r\nv1.0.0\n",
    )
    # "v1.0" is valid semver (shorthand) and kept, as go keeps it; duplicates collapse.
    assert client.list("example.com/odd") == ["v1.0", "v1.0.0", "v1.1.0"]


def test_list_upper_case_path_is_escaped(modproxy: ModuleProxy, client: GoProxyClient) -> None:  # noqa: F811
    add_hello(modproxy, "example.com/MixedCase/tool", "v1.0.0")
    assert client.list("example.com/MixedCase/tool") == ["v1.0.0"]
    assert modproxy.requests == ["/example.com/!mixed!case/tool/@v/list"]


def test_list_unknown_module(modproxy: ModuleProxy, client: GoProxyClient) -> None:  # noqa: F811
    with pytest.raises(ModuleNotFound) as e:
        client.list("example.com/nope")
    assert str(e.value).startswith(f"example.com/nope: not found (404 Not Found from {modproxy.url}: not found: module")


def test_info_and_resolve(modproxy: ModuleProxy, client: GoProxyClient) -> None:  # noqa: F811
    add_hello(modproxy, "example.com/hello", "v1.0.0", time="2024-05-06T07:08:09Z")
    add_hello(modproxy, "example.com/hello", "v1.1.0")
    modproxy.alias("example.com/hello", "main", "v1.0.0")
    assert client.info("example.com/hello", "v1.0.0") == VersionInfo("v1.0.0", "2024-05-06T07:08:09Z")
    assert client.resolve("example.com/hello", "main") == "v1.0.0"
    assert client.resolve("example.com/hello", "latest") == "v1.1.0"
    # A partial semver is a query for the highest matching version, as in go.
    assert client.resolve("example.com/hello", "v1") == "v1.1.0"
    assert client.resolve("example.com/hello", "v1.0") == "v1.0.0"
    with pytest.raises(ModuleNotFound):
        client.resolve("example.com/hello", "v2")


def test_info_unknown_version(modproxy: ModuleProxy, client: GoProxyClient) -> None:  # noqa: F811
    add_hello(modproxy, "example.com/hello", "v1.0.0")
    with pytest.raises(ModuleNotFound) as e:
        client.info("example.com/hello", "v9.9.9")
    assert str(e.value).startswith(f"example.com/hello@v9.9.9: not found (410 Gone from {modproxy.url}: not found:")


def test_info_upper_case_version_escaped(modproxy: ModuleProxy, client: GoProxyClient) -> None:  # noqa: F811
    add_hello(modproxy, "example.com/hello", "v1.0.0-RC1")
    assert client.info("example.com/hello", "v1.0.0-RC1").version == "v1.0.0-RC1"
    assert modproxy.requests == ["/example.com/hello/@v/v1.0.0-!r!c1.info"]


@pytest.mark.parametrize(
    "versions,want",
    [
        (["v1.0.0", "v1.1.0-rc.1", "v1.0.1"], "v1.0.1"),  # releases beat pre-releases
        (["v1.1.0-rc.1", "v1.1.0-beta.2"], "v1.1.0-rc.1"),  # else the highest pre-release
        (["v0.0.0-20240102030405-abcdefabcdef"], "v0.0.0-20240102030405-abcdefabcdef"),  # else @latest
    ],
)
def test_latest(modproxy: ModuleProxy, client: GoProxyClient, versions: list[str], want: str) -> None:  # noqa: F811
    for v in versions:
        add_hello(modproxy, "example.com/hello", v)
    assert client.latest("example.com/hello").version == want


def test_latest_without_latest_endpoint_uses_pseudo_versions_from_list(
    modproxy: ModuleProxy, client: GoProxyClient  # noqa: F811
) -> None:
    old, new = "v0.0.0-20230102030405-aaaaaaaaaaaa", "v0.0.0-20240102030405-bbbbbbbbbbbb"
    add_hello(modproxy, "example.com/hello", old)
    add_hello(modproxy, "example.com/hello", new)
    modproxy.serve("/example.com/hello/@v/list", f"{new}\n{old}\n".encode())
    modproxy.fail("/example.com/hello/@latest", 404)
    assert client.latest("example.com/hello").version == new


def test_latest_v2_module(modproxy: ModuleProxy, client: GoProxyClient) -> None:  # noqa: F811
    add_hello(modproxy, "example.com/multi/v2", "v2.0.0")
    add_hello(modproxy, "example.com/multi/v2", "v2.1.0")
    assert client.latest("example.com/multi/v2") == VersionInfo("v2.1.0", "2024-01-01T00:00:00Z")


def test_latest_unknown_module(client: GoProxyClient) -> None:
    with pytest.raises(ModuleNotFound, match=r"^example.com/nope@latest: not found \(404"):
        client.latest("example.com/nope")


def test_mod(modproxy: ModuleProxy, client: GoProxyClient) -> None:  # noqa: F811
    add_hello(modproxy, "example.com/hello", "v1.0.0")
    assert client.mod("example.com/hello", "v1.0.0") == b"module example.com/hello\n\ngo 1.22\n"


def test_zip(modproxy: ModuleProxy, client: GoProxyClient, tmp_path: pathlib.Path) -> None:  # noqa: F811
    add_hello(modproxy, "example.com/MixedCase/tool", "v1.0.0")
    dest = tmp_path / "tool.zip"
    client.zip("example.com/MixedCase/tool", "v1.0.0", dest)
    with zipfile.ZipFile(dest) as zf:
        assert sorted(zf.namelist()) == [
            "example.com/MixedCase/tool@v1.0.0/go.mod",
            "example.com/MixedCase/tool@v1.0.0/main.go",
        ]
    assert os.listdir(tmp_path) == ["tool.zip"]


def test_zip_not_found_leaves_nothing(modproxy: ModuleProxy, client: GoProxyClient, tmp_path: pathlib.Path) -> None:  # noqa: F811
    add_hello(modproxy, "example.com/hello", "v1.0.0")
    with pytest.raises(ModuleNotFound):
        client.zip("example.com/hello", "v1.0.1", tmp_path / "x.zip")
    assert os.listdir(tmp_path) == []


def test_zip_too_large(
    modproxy: ModuleProxy, client: GoProxyClient, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    add_hello(modproxy, "example.com/hello", "v1.0.0")
    monkeypatch.setattr(goproxy, "MAX_ZIP_BYTES", 100)
    with pytest.raises(ProxyUnavailable, match="too large"):
        client.zip("example.com/hello", "v1.0.0", tmp_path / "x.zip")
    assert os.listdir(tmp_path) == []


def test_zip_malformed(modproxy: ModuleProxy, client: GoProxyClient, tmp_path: pathlib.Path) -> None:  # noqa: F811
    modproxy.serve("/example.com/hello/@v/v1.0.0.zip", b"not a zip at all")
    with pytest.raises(ProxyUnavailable, match="malformed zip"):
        client.zip("example.com/hello", "v1.0.0", tmp_path / "x.zip")
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------- bad input, bad answers


@pytest.mark.parametrize("call", ["list", "latest", "info", "mod", "zip"])
def test_invalid_path_before_any_request(
    modproxy: ModuleProxy, client: GoProxyClient, tmp_path: pathlib.Path, call: str  # noqa: F811
) -> None:
    args: dict[str, tuple[object, ...]] = {
        "list": (),
        "latest": (),
        "info": ("v1.0.0",),
        "mod": ("v1.0.0",),
        "zip": ("v1.0.0", tmp_path / "x.zip"),
    }
    with pytest.raises(module.InvalidPath):
        getattr(client, call)("example.com/../evil", *args[call])
    assert modproxy.requests == []


@pytest.mark.parametrize("call,version", [("info", "a/b"), ("info", "../x"), ("mod", "master"), ("zip", "v1.0")])
def test_invalid_version_before_any_request(
    modproxy: ModuleProxy, client: GoProxyClient, tmp_path: pathlib.Path, call: str, version: str  # noqa: F811
) -> None:
    args = (tmp_path / "x.zip",) if call == "zip" else ()
    with pytest.raises(module.InvalidVersion):
        getattr(client, call)("example.com/hello", version, *args)
    assert modproxy.requests == []


def test_server_error_is_remote_error(modproxy: ModuleProxy, client: GoProxyClient) -> None:  # noqa: F811
    add_hello(modproxy, "example.com/hello", "v1.0.0")
    modproxy.fail("/example.com/hello/", 500)
    with pytest.raises(ProxyUnavailable) as e:
        client.info("example.com/hello", "v1.0.0")
    assert str(e.value) == f"example.com/hello@v1.0.0: 500 Internal Server Error from {modproxy.url}: injected failure"
    modproxy.fail("/example.com/hello/", 0)
    assert client.resolve("example.com/hello", "v1.0.0") == "v1.0.0"


@pytest.mark.parametrize(
    "body", [b"not json", b"[]", b'{"Version": 1}', b'{"Version": "v1.0"}', b'{"Version": "v1.0.0", "Time": 3}']
)
def test_malformed_info_is_remote_error(modproxy: ModuleProxy, client: GoProxyClient, body: bytes) -> None:  # noqa: F811
    modproxy.serve("/example.com/hello/@v/v1.0.0.info", body)
    with pytest.raises(ProxyUnavailable, match=r"invalid \.info response"):
        client.info("example.com/hello", "v1.0.0")


def test_info_for_other_version_is_remote_error(modproxy: ModuleProxy, client: GoProxyClient) -> None:  # noqa: F811
    modproxy.serve("/example.com/hello/@v/v1.0.0.info", b'{"Version": "v1.0.1", "Time": "2024-01-01T00:00:00Z"}')
    with pytest.raises(ProxyUnavailable, match=r"returned info for version v1\.0\.1 instead of requested version"):
        client.info("example.com/hello", "v1.0.0")


# ---------------------------------------------------------------------------- proxy lists


@pytest.fixture
def second() -> Iterator[ModuleProxy]:
    """Another proxy, for GOPROXY lists."""
    with ModuleProxy() as proxy:
        yield proxy


def test_comma_falls_through_on_not_found(modproxy: ModuleProxy, second: ModuleProxy) -> None:  # noqa: F811
    add_hello(second, "example.com/hello", "v1.0.0")
    client = GoProxyClient(f"{modproxy.url},{second.url}", timeout=5)
    assert client.resolve("example.com/hello", "v1.0.0") == "v1.0.0"
    assert modproxy.requests == second.requests == ["/example.com/hello/@v/v1.0.0.info"]


def test_comma_stops_on_error(modproxy: ModuleProxy, second: ModuleProxy) -> None:  # noqa: F811
    add_hello(second, "example.com/hello", "v1.0.0")
    modproxy.fail("/", 502)
    client = GoProxyClient(f"{modproxy.url},{second.url}", timeout=5)
    with pytest.raises(ProxyUnavailable, match=f"502 Bad Gateway from {modproxy.url}"):
        client.resolve("example.com/hello", "v1.0.0")
    assert second.requests == []


def test_a_refusal_is_not_a_module_not_found_nor_an_outage(modproxy: ModuleProxy, second: ModuleProxy) -> None:  # noqa: F811
    # A 4xx other than 404/410 (e.g. 403 "this module version is not available"): go reports it as an error and
    # does not fall through on ','; we say the proxy refused, with its words, not "try again later".
    add_hello(second, "example.com/hello", "v1.0.0")
    modproxy.fail("/", 403)
    client = GoProxyClient(f"{modproxy.url},{second.url}", timeout=5)
    with pytest.raises(ProxyRefused, match=f"403 Forbidden from {modproxy.url}") as e:
        client.resolve("example.com/hello", "v1.0.0")
    assert e.value.status == 502 and e.value.code == "proxy-refused" and e.value.retry_after is None
    assert second.requests == []
    for busy in (408, 429):  # a timeout or a rate limit: trying again later may work
        modproxy.fail("/", busy)
        with pytest.raises(ProxyUnavailable) as unavailable:
            client.resolve("example.com/hello", "v1.0.0")
        assert not isinstance(unavailable.value, ProxyRefused) and unavailable.value.status == 503, busy


def test_pipe_falls_through_on_error(modproxy: ModuleProxy, second: ModuleProxy) -> None:  # noqa: F811
    add_hello(second, "example.com/hello", "v1.0.0")
    modproxy.fail("/", 500)
    client = GoProxyClient(f"{modproxy.url}|{second.url}", timeout=5)
    assert client.mod("example.com/hello", "v1.0.0").startswith(b"module example.com/hello")


def test_pipe_falls_through_on_connection_refused(second: ModuleProxy) -> None:
    add_hello(second, "example.com/hello", "v1.0.0")
    dead = _closed_port_url()
    assert GoProxyClient(f"{dead}|{second.url}", timeout=5).list("example.com/hello") == ["v1.0.0"]
    with pytest.raises(ProxyUnavailable, match="ConnectionError"):
        GoProxyClient(f"{dead},{second.url}", timeout=5).list("example.com/hello")


def test_error_beats_not_found_in_report(modproxy: ModuleProxy, second: ModuleProxy) -> None:  # noqa: F811
    # As go: when one proxy failed and the next lacks the module, the failure is what we report.
    modproxy.fail("/", 500)
    client = GoProxyClient(f"{modproxy.url}|{second.url}", timeout=5)
    with pytest.raises(ProxyUnavailable, match="500"):
        client.list("example.com/hello")


def test_not_found_everywhere(modproxy: ModuleProxy, second: ModuleProxy) -> None:  # noqa: F811
    client = GoProxyClient(f"{modproxy.url},{second.url}", timeout=5)
    with pytest.raises(ModuleNotFound) as e:
        client.info("example.com/x", "v9.9.9")
    msg = str(e.value)
    assert msg.startswith("example.com/x@v9.9.9: not found (404 Not Found from ")
    assert modproxy.url in msg and second.url in msg


def test_off() -> None:
    with pytest.raises(ProxyUnavailable, match="GOPROXY=off"):
        GoProxyClient("off").list("example.com/hello")


def test_off_after_not_found(modproxy: ModuleProxy) -> None:  # noqa: F811
    with pytest.raises(ModuleNotFound):
        GoProxyClient(f"{modproxy.url},off").list("example.com/hello")


def test_timeout() -> None:
    # A listening socket that never accepts: the TCP handshake completes, no answer ever comes.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        start = time.monotonic()
        with pytest.raises(ProxyUnavailable, match="Timeout"):
            GoProxyClient(url, timeout=0.3).list("example.com/hello")
        assert time.monotonic() - start < 3


def test_stalled_zip_body(tmp_path: pathlib.Path) -> None:
    # Headers and the first bytes arrive, then nothing: the read timeout ends it, no temp file stays.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        stop = threading.Event()

        def serve_stalled() -> None:
            conn, _ = sock.accept()
            with conn:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nPK\x03\x04")
                stop.wait(5)

        thread = threading.Thread(target=serve_stalled, daemon=True)
        thread.start()
        client = GoProxyClient(f"http://127.0.0.1:{sock.getsockname()[1]}", timeout=0.3)
        try:
            with pytest.raises(ProxyUnavailable, match="reading response"):
                client.zip("example.com/hello", "v1.0.0", tmp_path / "x.zip")
        finally:
            stop.set()
            thread.join(5)
    assert os.listdir(tmp_path) == []


def test_password_redacted_in_errors(modproxy: ModuleProxy) -> None:  # noqa: F811
    url = modproxy.url.replace("http://", "http://user:secret@")
    with pytest.raises(ModuleNotFound) as e:
        GoProxyClient(url, timeout=5).list("example.com/nope")
    assert "secret" not in str(e.value)
    assert "http://user:xxxxx@127.0.0.1" in str(e.value)


def test_user_agent(modproxy: ModuleProxy) -> None:  # noqa: F811
    seen: list[str] = []
    session = requests.Session()
    session.hooks["response"].append(lambda r, *a, **k: seen.append(r.request.headers["User-Agent"]))
    add_hello(modproxy, "example.com/hello", "v1.0.0")
    GoProxyClient(modproxy.url, session=session, user_agent="gobuild-test/1").list("example.com/hello")
    assert seen == ["gobuild-test/1"]


def _closed_port_url() -> str:
    """URL of a 127.0.0.1 port that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# ---------------------------------------------------------------------------- the real go command


@pytest.fixture(scope="module")
def go_build_cache(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """One build cache for this file's go runs: the first compile of the std library is the slow part."""
    if not os.access(GO, os.X_OK):
        pytest.skip(f"{GO} not installed")
    return tmp_path_factory.mktemp("gocache")


def go_env(proxy: ModuleProxy, home: pathlib.Path, cache: pathlib.Path) -> dict[str, str]:
    """A from-scratch environment for go using only proxy, like gocmd builds it."""
    return {
        "GOPROXY": proxy.url,
        "GOSUMDB": "off",
        # -modcacherw so that pytest can delete the module cache afterwards.
        "GOFLAGS": "-mod=mod -modcacherw",
        "HOME": str(home),
        "GOPATH": str(home / "go"),
        "GOMODCACHE": str(home / "mod"),
        "GOCACHE": str(cache),
        "CGO_ENABLED": "0",
        "GOTOOLCHAIN": "local",
        "PATH": "/usr/local/go/bin:/usr/bin:/bin",
    }


def run_go(env: dict[str, str], cwd: pathlib.Path, *args: str) -> str:
    """Run go with args; its stdout, or a failed assertion showing its output."""
    proc = subprocess.run([GO, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"go {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}"
    return proc.stdout


@pytest.mark.parametrize(
    "path,version,binary",
    [
        ("example.com/hello", "v1.0.0", "hello"),
        ("example.com/MixedCase/tool", "v1.2.0-RC1", "tool"),
        ("example.com/multi/v2", "v2.1.0", "multi"),  # go names a /vN command after the element before
    ],
)
def test_go_install_from_modproxy(
    modproxy: ModuleProxy, tmp_path: pathlib.Path, go_build_cache: pathlib.Path, path: str, version: str, binary: str  # noqa: F811
) -> None:
    add_hello(modproxy, path, version, message=f"hi from {path}")
    env = go_env(modproxy, tmp_path, go_build_cache)
    run_go(env, tmp_path, "install", "-trimpath", "-ldflags=-buildid=", "--", f"{path}@{version}")
    exe = tmp_path / "go" / "bin" / binary
    assert subprocess.run([exe], capture_output=True, text=True, check=True).stdout == f"hi from {path}\n"
    assert module.escape_path(path) + "/@v/" + module.escape_version(version) + ".zip" in "".join(modproxy.requests)


def test_go_mod_download_json(modproxy: ModuleProxy, tmp_path: pathlib.Path, go_build_cache: pathlib.Path) -> None:  # noqa: F811
    add_hello(modproxy, "example.com/MixedCase/tool", "v1.0.0", time="2024-02-03T04:05:06Z")
    env = go_env(modproxy, tmp_path, go_build_cache)
    out = json.loads(run_go(env, tmp_path, "mod", "download", "-json", "example.com/MixedCase/tool@v1.0.0"))
    assert out["Path"] == "example.com/MixedCase/tool"
    assert out["Version"] == "v1.0.0"
    assert out["Zip"] == str(tmp_path / "mod/cache/download/example.com/!mixed!case/tool/@v/v1.0.0.zip")
    assert out["Dir"] == str(tmp_path / "mod/example.com/!mixed!case/tool@v1.0.0")
    assert out["Sum"].startswith("h1:") and out["GoModSum"].startswith("h1:")
    assert (pathlib.Path(out["Dir"]) / "main.go").is_file()
    assert "Error" not in out


def test_go_and_client_agree_on_latest_and_queries(
    modproxy: ModuleProxy, tmp_path: pathlib.Path, go_build_cache: pathlib.Path  # noqa: F811
) -> None:
    for v in ["v1.0.0", "v1.0.1", "v1.1.0-rc.1", "v1.1.1-rc.1", "v0.9.0"]:
        add_hello(modproxy, "example.com/hello", v)
    modproxy.alias("example.com/hello", "main", "v1.0.0")
    env = go_env(modproxy, tmp_path, go_build_cache)
    client = GoProxyClient(modproxy.url, timeout=5)
    for query in ["latest", "main", "v1", "v1.1", "v0", "v1.0.0"]:
        out = json.loads(run_go(env, tmp_path, "list", "-m", "-json", f"example.com/hello@{query}"))
        assert client.resolve("example.com/hello", query) == out["Version"], query


def test_modproxy_serves_sumdb_404(modproxy: ModuleProxy) -> None:  # noqa: F811
    assert requests.get(modproxy.url + "/sumdb/sum.example/supported", timeout=5).status_code == 404
