"""The install one-liner against the real server, run by dash: detection, checks, quoting, tampering."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from gobuild.spec import sum_from_digest
from tests.conftest import GOVERSION
from tests.modproxy import ModuleProxy, hello_module
from tests.realserver import real_server

DASH = shutil.which("dash") or "/usr/bin/dash"
ODD = "example.com/odd~mod"  # a valid module path with a character the shell treats specially
TOOLS = ("uname", "mktemp", "rm", "sed", "awk", "cut", "wc", "tr", "cat", "mkdir", "cp", "chmod", "mv",
         "sha256sum", "dash", "sh")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, server_cache: Path) -> Iterator[str]:
    assert os.path.exists(DASH), "the install tests need dash (tests/setup.sh installs it)"
    with ModuleProxy() as proxy, real_server(tmp_path_factory.mktemp("install"), proxy.url,
                                             cache_dir=str(server_cache)) as base:
        proxy.add("example.com/hello", "v1.0.0", hello_module("example.com/hello", "v1.0.0"))
        proxy.add("example.com/hello", "v1.1.0", hello_module("example.com/hello", "v1.1.0", "hello again"))
        proxy.add(ODD, "v1.0.0", {"go.mod": f"module {ODD}\n\ngo 1.22\n",
                                  "cmd/we+ird/main.go": 'package main\n\nfunc main() { println("weird") }\n'})
        proxy.add("example.com/broken", "v1.0.0", {"go.mod": "module example.com/broken\n\ngo 1.22\n",
                                                   "main.go": "package main\n\nfunc main() { undefined() }\n"})
        yield base


def run_script(script_url: str, home: Path, path: str = "/usr/bin:/bin", shell: str = DASH,
               **env: str) -> subprocess.CompletedProcess[str]:
    """`curl -fsSL URL | sh` with dash as sh, in an empty HOME."""
    home.mkdir(parents=True, exist_ok=True)
    full_env = {"HOME": str(home), "PATH": path, **env}
    script = requests.get(script_url, timeout=300)
    assert script.status_code == 200, script.text
    return subprocess.run([shell, "-s"], input=script.text, env=full_env, cwd=home, capture_output=True,
                          text=True, timeout=600)


def tool_dir(tmp: Path, without: str) -> str:
    """A PATH with the tools the script uses, all but one."""
    d = tmp / f"bin-without-{without}"
    d.mkdir()
    for tool in (*TOOLS, "curl", "wget"):
        found = shutil.which(tool)
        if tool != without and found:
            (d / tool).symlink_to(found)
    return str(d)


def server_sum(base: str, path: str) -> str:
    """The sum in the result URL the build redirects to."""
    r = requests.get(base + path, timeout=300, allow_redirects=True)
    r.raise_for_status()
    return r.url.rstrip("/").split("/")[-2]


def test_one_liner_with_curl_installs_into_local_bin(server: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    url = f"{server}/example.com/hello@latest/install.sh"
    head = requests.get(url, timeout=300)
    assert head.headers["Cache-Control"] == "no-store"
    assert head.text.startswith("#!/bin/sh\n")
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(["sh", "-c", f"curl -fsSL '{url}' | {DASH}"], env=env, cwd=home,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    binary = home / ".local" / "bin" / "hello"
    assert os.access(binary, os.X_OK)
    assert subprocess.run([binary], capture_output=True, text=True).stdout == "hello again\n"  # latest is v1.1.0
    sum_ = sum_from_digest(hashlib.sha256(binary.read_bytes()).digest())
    assert sum_ == server_sum(server, f"/example.com/hello@v1.1.0/linux-amd64-{GOVERSION}/record")
    assert f"installed {binary} (example.com/hello@v1.1.0, sum {sum_})" in proc.stderr
    assert "is not in your PATH" in proc.stderr
    page = requests.get(server + f"/example.com/hello@v1.1.0/linux-amd64-{GOVERSION}/{sum_}/", timeout=30).text
    assert f"<code>curl -fsSL {server}/example.com/hello@latest/install.sh | sh</code>" in page


def test_wget_shasum_and_prefix(server: str, tmp_path: Path) -> None:
    """Without curl and sha256sum: wget and shasum (macOS has shasum; Debian's perl ships it)."""
    path = tool_dir(tmp_path, without="curl")
    (Path(path) / "sha256sum").unlink()
    (Path(path) / "shasum").symlink_to(shutil.which("shasum") or "/usr/bin/shasum")
    (Path(path) / "perl").symlink_to(shutil.which("perl") or "/usr/bin/perl")
    proc = run_script(f"{server}/example.com/hello@v1.0.0/install.sh", tmp_path / "home", path=path,
                      PREFIX=str(tmp_path / "prefix"))
    assert proc.returncode == 0, proc.stderr
    out = subprocess.run([tmp_path / "prefix" / "bin" / "hello"], capture_output=True, text=True).stdout
    assert out == "hello\n"


def test_sub_directory_command_and_hostile_looking_names(server: str, tmp_path: Path) -> None:
    """A valid module path with ~ and a command named we+ird, into a BINDIR with a space, quotes and $()."""
    bindir = tmp_path / "my bin $(touch PWNED) 'x' `touch PWNED2`"
    proc = run_script(f"{server}/{ODD}@latest/cmd/we+ird/install.sh", tmp_path / "home", BINDIR=str(bindir))
    assert proc.returncode == 0, proc.stderr
    assert subprocess.run([bindir / "we+ird"], capture_output=True, text=True).stderr == "weird\n"
    assert not list(tmp_path.rglob("PWNED*"))


def test_a_forged_host_header_is_refused(server: str) -> None:
    """The script names the host it was fetched from: only a host name or address may get there."""
    url = f"{server}/example.com/hello@v1.0.0/install.sh"
    r = requests.get(url, headers={"Host": "x$(touch PWNED)'`touch PWNED2`;touch PWNED3"}, timeout=300)
    assert r.status_code == 400 and "Host header" in r.text
    assert "GOBUILD_BASE=http://localhost:1\n" in requests.get(url, headers={"Host": "localhost:1"}, timeout=300).text


@pytest.mark.parametrize("without, status", [("wget", "422"), ("curl", "error")])
def test_failed_build_fails_loudly_with_the_servers_reason(server: str, tmp_path: Path, without: str,
                                                           status: str) -> None:
    proc = run_script(f"{server}/example.com/broken@v1.0.0/install.sh", tmp_path / "home",
                      path=tool_dir(tmp_path, without=without))
    assert proc.returncode == 1
    assert f"record: failed ({status}). The server said:" in proc.stderr
    assert "422 - Unprocessable Entity - " in proc.stderr and "undefined" in proc.stderr
    assert not (tmp_path / "home" / ".local").exists()


@pytest.mark.parametrize("path, status, message", [
    (f"/{ODD}@v1.0.0/install.sh", 404, f"the module's install scripts: /{ODD}@v1.0.0/cmd/we+ird/install.sh"),
    ("/example.com/hello/install.sh", 404, "expected /<module>@<version>/[<dir>/]install.sh"),
    ("/example.com/nothere@latest/install.sh", 404, "nothere"),
])
def test_bad_requests(server: str, path: str, status: int, message: str) -> None:
    r = requests.get(server + path, timeout=300)
    assert r.status_code == status and message in r.text


class _Tamperer(BaseHTTPRequestHandler):
    """Forwards to the server, flipping one byte of every binary it passes on."""

    upstream = ""

    def do_GET(self) -> None:
        headers = {"Host": self.headers["Host"], "Accept-Encoding": "identity"}
        r = requests.get(self.upstream + self.path, headers=headers, allow_redirects=False, timeout=300)
        body = r.content
        if r.status_code == 200 and self.path.endswith(f"-{GOVERSION}"):
            body = body[:1000] + bytes([body[1000] ^ 1]) + body[1001:]
        self.send_response(r.status_code)
        for k, v in r.headers.items():
            if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_binary_tampered_in_transit_is_refused(server: str, tmp_path: Path) -> None:
    handler = type("Tamperer", (_Tamperer,), {"upstream": server})
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        proc = run_script(f"http://127.0.0.1:{proxy.server_address[1]}/example.com/hello@v1.0.0/install.sh",
                          tmp_path / "home")
    finally:
        proxy.shutdown()
        proxy.server_close()
    assert proc.returncode == 1
    assert "REFUSED: the download is not the logged build" in proc.stderr and "Nothing was installed" in proc.stderr
    assert not (tmp_path / "home" / ".local").exists()


@pytest.mark.parametrize("system, machine, expect", [
    ("Linux", "aarch64", "linux-arm64-"), ("Darwin", "arm64", "darwin-arm64-"), ("Linux", "armv7l", "linux-arm-"),
    ("Linux", "i686", "linux-386-"), ("FreeBSD", "amd64", "freebsd-amd64-"),
    ("Linux", "armv6l", "need ARMv7 (Go's default GOARM=7); this machine is armv6l"),
    ("Plan9", "x86_64", "no builds for this system: Plan9"), ("Linux", "sparc", "no builds for this CPU: sparc"),
])
def test_platform_detection(server: str, tmp_path: Path, system: str, machine: str, expect: str) -> None:
    """A fake uname and a curl that only reports the URL it was asked for: no build for other targets."""
    bin_dir = Path(tool_dir(tmp_path, without="uname"))
    for name, body in (("uname", f'[ "$1" = -s ] && echo {system} || echo {machine}'),
                       ("curl", 'for a; do u=$a; done; echo "asked for $u" >&2; echo 000')):
        (bin_dir / name).unlink(missing_ok=True)
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    proc = run_script(f"{server}/example.com/hello@v1.0.0/install.sh", tmp_path / "home", path=str(bin_dir))
    assert proc.returncode == 1 and expect in proc.stderr, proc.stderr


def test_sum_decoding_matches_the_wire_format(server: str, tmp_path: Path) -> None:
    """The script's awk base64url decoder against Python's, on sums whose bytes cover every value."""
    script = requests.get(f"{server}/example.com/hello@v1.0.0/install.sh", timeout=300).text
    decoder = script[script.index("sum_hex() {"):script.index("sha256_hex() {")]
    for seed in range(8):
        digest = hashlib.sha256(bytes([seed])).digest()
        out = subprocess.run([DASH, "-c", decoder + 'sum_hex "$1"', "sh", sum_from_digest(digest)],
                             capture_output=True, text=True, check=True).stdout.strip()
        assert out == digest[:20].hex()
