"""The real server's life: a private module proxy with credentials, SIGTERM during a build, SIGHUP."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from gobuild.tlog import note
from tests.conftest import GOVERSION
from tests.modproxy import ModuleProxy, hello_module
from tests.realserver import free_port, real_server, start_server

TARGET = f"linux-amd64-{GOVERSION}"
PASSWORD = "s3cret-Pa55-never-shown"


def download_path(module: str, version: str) -> str:
    return f"/{module}@{version}/{TARGET}/{module.rsplit('/', 1)[-1]}-{version}-{GOVERSION}"


def test_private_proxy_with_basic_auth_builds_and_never_shows_the_password(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with ModuleProxy(tls_dir=tmp_path / "tls", auth=("builder", PASSWORD)) as proxy:
        proxy.add("example.com/private", "v1.0.0", hello_module("example.com/private", "v1.0.0", "private"))
        host = proxy.url.removeprefix("https://")
        netrc = tmp_path / "netrc"
        netrc.write_text(f"machine {host} login builder password {PASSWORD}\n")
        netrc.chmod(0o600)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(proxy.ca_file))  # our client trusts the test certificate
        monkeypatch.setenv("GOPRIVATE", "example.com/private")  # passed through to the go commands
        proc, base = start_server(tmp_path, proxy.url, goproxy_auth_file=str(netrc),
                                  environment=["GOSUMDB=off", f"SSL_CERT_FILE={proxy.ca_file}"])
        try:
            r = requests.get(base + download_path("example.com/private", "v1.0.0"), timeout=300)
            assert r.status_code == 200, r.text
            result = r.url.rsplit("/", 1)[0] + "/"
            pages = [requests.get(base + path, timeout=60).text
                     for path in ("/", "/example.com/private@v1.0.0/" + TARGET + "/")]
            pages += [requests.get(result, timeout=60).text, requests.get(result + "log", timeout=60).text]
            assert "example.com/private" in pages[2]
            assert proxy.unauthorized == 0  # our client and go both sent the credentials
            # The proxy does insist on them.
            assert requests.get(proxy.url + "/example.com/private/@v/list", timeout=10).status_code == 401
        finally:
            proc.terminate()
            stderr = proc.communicate(timeout=60)[1].decode(errors="replace")
    assert PASSWORD not in stderr and "builder" not in stderr
    for text in pages:
        assert PASSWORD not in text
    for path in (tmp_path / "data").rglob("*"):  # blobs (build logs), results, job logs, caches
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path


def test_a_wrong_auth_file_is_a_config_error_that_shows_no_secret(tmp_path: Path) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine example.com login builder password {PASSWORD} macdef\n")
    with ModuleProxy() as proxy:
        config = tmp_path / "config.json"
        config.write_text(json.dumps({"goproxy": proxy.url, "goproxy_auth_file": str(netrc), "admin_listen": "",
                                      "data_dir": str(tmp_path / "data")}))
        out = subprocess.run(["python3", "app.py", "--config", str(config)], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent.parent, timeout=60)
    assert out.returncode == 2
    assert "goproxy_auth_file" in out.stderr and PASSWORD not in out.stderr


def _wait_for(condition: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _start_slow_build(base: str, proxy: ModuleProxy, version: str) -> None:
    r = requests.post(f"{base}/example.com/slow@{version}/{TARGET}/start", timeout=60, allow_redirects=False)
    assert r.status_code == 303, r.text
    _wait_for(lambda: any(p.endswith(f"/@v/{version}.zip") for p in proxy.requests))  # go is downloading now


@pytest.fixture
def slow_proxy() -> Iterator[ModuleProxy]:
    """Each test builds its own version: the module cache of this file's servers is shared."""
    with ModuleProxy() as proxy:
        for version in ("v1.0.0", "v1.0.1"):
            proxy.add("example.com/slow", version, hello_module("example.com/slow", version, "slow"))
        yield proxy


def _stop(proc: subprocess.Popen[bytes], timeout: float) -> str:
    """SIGTERM the server and return its stderr (killed if it does not stop within timeout)."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.communicate(timeout=timeout)[1].decode(errors="replace")
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise


def test_sigterm_lets_a_running_build_finish(tmp_path: Path, slow_proxy: ModuleProxy, server_cache: Path) -> None:
    slow_proxy.delay("/example.com/slow/@v/v1.0.0.zip", 2)
    proc, base = start_server(tmp_path, slow_proxy.url, cache_dir=str(server_cache), shutdown_timeout=120)
    try:
        _start_slow_build(base, slow_proxy, "v1.0.0")
    finally:
        stderr = _stop(proc, 180)
    assert proc.returncode == 0, stderr
    assert "waiting up to 120s for 1 build(s)" in stderr
    with real_server(tmp_path, slow_proxy.url, cache_dir=str(server_cache)) as base:
        r = requests.get(base + f"/example.com/slow@v1.0.0/{TARGET}/", timeout=60, allow_redirects=False)
        assert r.status_code == 307, (r.text, stderr)  # to the result: it was built and logged before the exit
        assert requests.get(base + "/tlog/latest", timeout=10).text.splitlines()[1] == "1"


def test_sigterm_kills_builds_past_the_timeout_and_leaves_nothing_torn(
        tmp_path: Path, slow_proxy: ModuleProxy, server_cache: Path) -> None:
    slow_proxy.delay("/example.com/slow/@v/v1.0.1.zip", 60)
    proc, base = start_server(tmp_path, slow_proxy.url, cache_dir=str(server_cache), shutdown_timeout=0.5)
    started = time.monotonic()
    try:
        _start_slow_build(base, slow_proxy, "v1.0.1")
        started = time.monotonic()
    finally:
        stderr = _stop(proc, 60)
    assert proc.returncode == 0, stderr
    assert time.monotonic() - started < 20
    assert "killing 1 build(s) still running" in stderr
    data = tmp_path / "data"
    assert not list((data / "failures").rglob("*.json"))  # killed is temporary, never a stored failure
    assert not list((data / "results").rglob("*.json"))
    assert not subprocess.run(["pgrep", "-f", str(data)], capture_output=True).stdout  # no go left running
    slow_proxy.delay("/example.com/slow/@v/v1.0.1.zip", 0)
    with real_server(tmp_path, slow_proxy.url, cache_dir=str(server_cache)) as base:
        r = requests.get(base + download_path("example.com/slow", "v1.0.1"), timeout=300)
        assert r.status_code == 200 and r.content
        assert requests.get(base + "/tlog/latest", timeout=10).text.splitlines()[1] == "1"
        assert not list((data / "jobs").glob("*.log"))


def test_sighup_reloads_instance_notes_and_limits(tmp_path: Path) -> None:
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    first.write_text("notes before the reload")
    second.write_text("notes after the reload")
    with ModuleProxy() as proxy:
        proc, base = start_server(tmp_path, proxy.url, instance_notes_file=str(first))
        try:
            assert "notes before the reload" in requests.get(base + "/", timeout=10).text
            config = tmp_path / "config.json"
            values = json.loads(config.read_text())
            config.write_text(json.dumps(values | {"instance_notes_file": str(second), "rate_limits": False}))
            proc.send_signal(signal.SIGHUP)
            _wait_for(lambda: "notes after the reload" in requests.get(base + "/", timeout=10).text, 20)
            config.write_text("{not json")  # a broken file keeps the old settings
            proc.send_signal(signal.SIGHUP)
            time.sleep(0.5)
            assert "notes after the reload" in requests.get(base + "/", timeout=10).text
            assert proc.poll() is None
        finally:
            proc.terminate()
            stderr = proc.communicate(timeout=60)[1].decode(errors="replace")
    assert "reloaded instance notes" in stderr and "keeping the old settings" in stderr
    assert proc.returncode == 0


class _SilentPeer(BaseHTTPRequestHandler):
    """A verifier that never answers in time (it holds every request)."""

    def do_GET(self) -> None:
        time.sleep(30)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_lookup_without_the_chain_header_waits_only_briefly_for_a_build_waiting_on_verifiers(
        tmp_path: Path, slow_proxy: ModuleProxy, server_cache: Path) -> None:
    peer = ThreadingHTTPServer(("127.0.0.1", 0), _SilentPeer)
    peer.daemon_threads = True
    threading.Thread(target=peer.serve_forever, daemon=True).start()
    _, key = note.generate_key("peer.example")
    admin = f"127.0.0.1:{free_port()}"
    spec = f"example.com/slow@v1.0.0/{TARGET}/"
    proc, base = start_server(tmp_path, slow_proxy.url, cache_dir=str(server_cache), admin_listen=admin,
                              verify_timeout=120, shutdown_timeout=0.5,
                              verifiers=[{"key": key, "url": f"http://127.0.0.1:{peer.server_address[1]}/tlog"}])
    try:
        assert requests.post(f"{base}/{spec}start", timeout=60, allow_redirects=False).status_code == 303
        _wait_for(lambda: "\tverifying\t" in requests.get(f"http://{admin}/pending", timeout=10).text, 300)
        started = time.monotonic()
        r = requests.get(f"{base}/tlog/lookup/{spec}", timeout=60)  # as the original gobuild asks: no chain
        assert r.status_code == 503
        assert "waiting for its verifiers" in r.text and "Gobuild-Verify-Chain" in r.text
        assert 4 <= time.monotonic() - started < 30
    finally:
        stderr = _stop(proc, 60)
        peer.shutdown()
        peer.server_close()
    assert proc.returncode == 0, stderr
    assert not list((tmp_path / "data" / "results").rglob("*.json"))  # nothing logged without agreement
