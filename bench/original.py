"""The original gobuild (Go), built from its source and run beside ours for bench/sidebyside.py.

    python bench/sidebyside.py --original DIR    (DIR: a checkout of the original's repository)

It is built offline from its vendor directory with the Go on PATH, with one patch
(original-offline.patch beside this file): with no network here, its list of supported Go
versions is the installed ones instead of go.dev's. Its SDK directory holds our Go; it runs with
an empty PATH (it refuses to start when gcc is on it) and our module proxy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from bench.common import GOROOT, GOVERSION, free_port, log

PATCH = Path(__file__).with_name("original-offline.patch")
CONFIG = """LogLevel: info
GoProxy: {proxy}/
DataDir: {dir}/data
SDKDir: {dir}/sdk
HomeDir: {dir}/home
MaxBuilds: 0
Environment:
\t- GOSUMDB=off
\t- GOPROXY={proxy}
\t- GOTOOLCHAIN=local
BuildGobin: false
LogDir:
SignerKeyFile: {dir}/signer.key
VerifierKey: {vkey}
"""


def build(src: Path, work: Path) -> Path:
    """The original's binary, built from a patched copy of src."""
    tree = work / "original-src"
    shutil.copytree(src, tree, symlinks=True, ignore=shutil.ignore_patterns(".git"))
    subprocess.run(["git", "apply", str(PATCH)], cwd=tree, check=True)
    binary = work / "original-gobuild"
    env = {**os.environ, "GOFLAGS": "-mod=vendor", "GOPROXY": "off", "GOTOOLCHAIN": "local"}
    log("building the original gobuild")
    subprocess.run(["go", "build", "-o", str(binary), "."], cwd=tree, env=env, check=True)
    return binary


@contextmanager
def running(binary: Path, work: Path, proxy: str) -> Iterator[tuple[str, int]]:
    """Serve the original on a free port of 127.0.0.1; yield its base URL and process id."""
    home = work / "original"
    (home / "sdk").mkdir(parents=True, exist_ok=True)
    (home / "sdk" / GOVERSION).symlink_to(GOROOT)
    (home / "empty-path").mkdir(exist_ok=True)
    keys = subprocess.run([str(binary), "genkey", "localhost"], capture_output=True, text=True, check=True)
    found = dict(line.split(": ", 1) for line in (keys.stdout + keys.stderr).splitlines() if ": " in line)
    (home / "signer.key").write_text(found["Signer key"].strip())  # without it the original serves no /tlog
    conf = home / "gobuild.conf"
    conf.write_text(CONFIG.format(proxy=proxy, dir=home, vkey=found["Verifier key"].strip()))
    port, admin = free_port(), free_port()
    env = {**os.environ, "PATH": str(home / "empty-path"), "HOME": str(home / "home")}
    with open(home / "server.log", "wb") as err:
        proc = subprocess.Popen([str(binary), "serve", "-listen-http", f"127.0.0.1:{port}", "-listen-admin",
                                 f"127.0.0.1:{admin}", str(conf)], cwd=home, env=env, stdout=err, stderr=err)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base, proc)
        yield base, proc.pid
    finally:
        proc.terminate()
        proc.wait(30)


def _wait_until_up(base: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            raise RuntimeError(f"the original gobuild exited with {proc.returncode}")
        try:
            requests.get(base + "/robots.txt", timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError("the original gobuild did not come up")


def endpoints(eps: list[tuple[str, str, dict[str, str]]]) -> list[tuple[str, str, dict[str, str]]]:
    """Our endpoints for the original, whose log holds only the one build: its tiles are partial."""
    partial = {"/tlog/tile/8/data/000": "/tlog/tile/8/data/000.p/1", "/tlog/tile/8/0/000": "/tlog/tile/8/0/000.p/1"}
    return [(label, partial.get(path, path), headers) for label, path, headers in eps]
