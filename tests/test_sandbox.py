"""The build sandbox (issue 10): go commands see only the toolchain, the caches and their own HOME, and
the sandbox changes no byte of the output."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from gobuild import gocmd
from gobuild.spec import BuildSpec
from gobuild.web import create_app
from tests.conftest import GOVERSION, make_config
from tests.gohelp import direct_sum
from tests.modproxy import ModuleProxy

SANDBOX, WHY = gocmd.find_sandbox()
needs_sandbox = pytest.mark.skipif(SANDBOX is None, reason=f"no sandbox here: {WHY} (tests/setup.sh installs bwrap)")
# As a server that does not run as root has it: a user namespace in which it appears as nobody.
USERNS = dataclasses.replace(SANDBOX, setpriv=None) if SANDBOX is not None and SANDBOX.setpriv else None
SANDBOXES = [pytest.param(SANDBOX, id="sandbox", marks=needs_sandbox),
             pytest.param(USERNS, id="userns", marks=pytest.mark.skipif(USERNS is None, reason="not root"))]

GOMOD = "module {}\n\ngo 1.22\n"


@pytest.fixture(scope="module")
def proxy() -> Iterator[ModuleProxy]:
    with ModuleProxy() as p:
        p.add("example.com/dep", "v1.0.0", {"go.mod": GOMOD.format("example.com/dep"),
                                           "dep.go": 'package dep\n\nfunc Msg() string { return "dep" }\n'})
        p.add("example.com/app", "v1.0.0", {
            "go.mod": GOMOD.format("example.com/app") + "\nrequire example.com/dep v1.0.0\n",
            "main.go": 'package main\n\nimport "example.com/dep"\n\nfunc main() { println(dep.Msg()) }\n'})
        yield p


def _build(app: Flask, spec: BuildSpec) -> tuple[int, str, str]:
    """Request the binary; (status, sum or "", log)."""
    client = app.test_client()
    r = client.get(spec.link() + spec.download_filename())
    if r.status_code != 307:
        return r.status_code, "", client.get(spec.link() + "log").get_data(as_text=True)
    result = r.headers["Location"].rsplit("/", 1)[0] + "/"
    return 307, result.rstrip("/").rsplit("/", 1)[1], client.get(result + "log").get_data(as_text=True)


@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_the_sandbox_changes_no_byte(proxy: ModuleProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     sandbox: gocmd.Sandbox) -> None:
    import gobuild.services

    monkeypatch.setattr(gobuild.services, "find_sandbox", lambda: (sandbox, ""))
    spec = BuildSpec("example.com/app", "v1.0.0", "/", "linux", "amd64", GOVERSION)
    sums = {}
    for mode in ("auto", "off"):
        app = create_app(make_config(tmp_path / mode, proxy, sandbox=mode))
        assert (app.extensions["gobuild"].sandbox_warning == "") == (mode == "auto")
        status, sum_, log = _build(app, spec)
        assert status == 307, log
        sums[mode] = sum_
        assert str(tmp_path) not in log  # paths in the log are the sandbox's, e.g. /build, /gomodcache
        if mode == "auto":
            assert "/build/go/bin/app" in log and "/goroot/" in log
    assert sums["auto"] == sums["off"] == direct_sum(spec, proxy.url, tmp_path / "direct")


def test_without_the_sandbox_the_home_page_says_so(proxy: ModuleProxy, tmp_path: Path) -> None:
    app = create_app(make_config(tmp_path / "data", proxy, sandbox="off"))
    page = app.test_client().get("/").get_data(as_text=True)
    assert "builds are NOT isolated" in page and "bubblewrap" in page


ASM_MAIN = "package main\n\nfunc secret() int\n\nfunc main() { println(secret()) }\n"
ASM = '#include "textflag.h"\n#include "{path}"\n\nTEXT ·secret(SB),NOSPLIT,$0-8\n\tMOVQ $1, ret+0(FP)\n\tRET\n'


@needs_sandbox
@pytest.mark.parametrize("kind", ["absolute", "relative"])
def test_assembly_cannot_include_server_files(proxy: ModuleProxy, tmp_path: Path, kind: str) -> None:
    data = tmp_path / "data"
    app = create_app(make_config(data, proxy))  # the module cache in data/cache, as by default
    key_file = data / "tlog" / "signer.key"
    key = key_file.read_text().strip()
    module = f"example.com/evil{kind}"
    moddir = data / "cache" / "mod" / f"{module}@v1.0.0"
    path = str(key_file) if kind == "absolute" else os.path.relpath(key_file, moddir)
    assert kind == "absolute" or path.startswith("../../../../")
    proxy.add(module, "v1.0.0", {"go.mod": GOMOD.format(module), "main.go": ASM_MAIN,
                                 "secret_amd64.s": ASM.format(path=path)})
    spec = BuildSpec(module, "v1.0.0", "/", "linux", "amd64", GOVERSION)
    status, _, log = _build(app, spec)
    assert status == 422, log
    assert "secret_amd64.s" in log  # the assembler ran, and did not find the file
    assert key not in log and key.split("+", 4)[4] not in log  # PRIVATE+KEY+name+hash+secret: the secret may hold "+"
    shown = log.replace(path, "<the module's own include>")  # its text may repeat the path it tried
    for server_path in (str(tmp_path), str(data)):
        assert server_path not in shown


@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_toolchain_commands_see_no_server_file(tmp_path: Path, sandbox: gocmd.Sandbox) -> None:
    secret = tmp_path / "data" / "secret"
    secret.parent.mkdir()
    secret.write_text("the server's secret\n")
    goroot = tmp_path / "fakego"
    (goroot / "bin").mkdir(parents=True)
    (goroot / "bin" / "go").write_text(f"#!/bin/sh\necho go version {GOVERSION} linux/amd64\n"
                                       f"cat {secret} 2>&1\nls / 2>&1\n")
    (goroot / "bin" / "go").chmod(0o755)
    home = tmp_path / "home"
    home.mkdir()
    out = gocmd.GoRunner(None, sandbox=sandbox).run(goroot, ["version"], home, 60)
    assert out.startswith(f"go version {GOVERSION} ")
    assert "the server's secret" not in out
    assert "data" not in out.split("\n", 2)[2].split()  # / holds no data dir


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of running processes that contain text."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{proc.name}: {cmdline[:200]}")
    return found


def _running(pid: str) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[-1][:1] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("sandboxed", [pytest.param(True, marks=needs_sandbox), False])
def test_no_go_process_outlives_a_killed_server(tmp_path: Path, sandboxed: bool) -> None:
    """A server killed with -9 (no cleanup of its own) leaves no go command running: bwrap's
    --die-with-parent and PID namespace end them, even a silent one that never hits a closed pipe."""
    import signal
    import subprocess
    import sys
    import time

    goroot = tmp_path / "fakego"
    (goroot / "bin").mkdir(parents=True)
    marker = "31.4159"  # a silent, long go command: sleeps
    (goroot / "bin" / "go").write_text(f"#!/bin/sh\nexec sleep {marker}\n")
    (goroot / "bin" / "go").chmod(0o755)
    (tmp_path / "home").mkdir()
    server = subprocess.Popen([sys.executable, "-c", (
        "import sys; from pathlib import Path; from gobuild import gocmd; "
        f"sandbox, _ = gocmd.find_sandbox() if {sandboxed} else (None, ''); "
        "gocmd.GoRunner(None, sandbox=sandbox).run(Path(sys.argv[1]), ['version'], Path(sys.argv[2]), 60)"),
        str(goroot), str(tmp_path / "home")], cwd=Path(__file__).resolve().parent.parent)
    try:
        deadline = time.monotonic() + 30
        while not (running := _processes_mentioning(f"sleep {marker}")):
            assert time.monotonic() < deadline, "the sandboxed command did not start"
            time.sleep(0.05)
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        pids = [p.split(":", 1)[0] for p in running]
        deadline = time.monotonic() + 10
        while left := [p for p in pids if _running(p)]:
            assert time.monotonic() < deadline, f"still running after the server died: {left}"
            time.sleep(0.05)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        for line in _processes_mentioning(f"sleep {marker}"):
            with contextlib.suppress(OSError):
                os.kill(int(line.split(":", 1)[0]), signal.SIGKILL)


@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_builds_can_read_what_name_lookup_and_tls_need(tmp_path: Path, sandbox: gocmd.Sandbox) -> None:
    # A download resolves the proxy's host name (resolv.conf, hosts, nsswitch.conf) and checks its
    # certificate (/etc/ssl): the sandbox identity must be able to read them, not just see them listed.
    goroot = tmp_path / "fakego"
    (goroot / "bin").mkdir(parents=True)
    wanted = [p for p in ("/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf") if os.path.isfile(p)]
    assert wanted, "this machine has none of the name lookup files"
    (goroot / "bin" / "go").write_text("#!/bin/sh\n" + "".join(f"cat {p} 2>&1\n" for p in wanted)
                                       + "ls /etc/ssl 2>&1\n")
    (goroot / "bin" / "go").chmod(0o755)
    home = tmp_path / "home"
    home.mkdir()
    out = gocmd.GoRunner(None, sandbox=sandbox).run(goroot, ["env"], home, 60, network=True)
    assert "Permission denied" not in out
    for p in wanted:
        assert Path(p).read_text() in out
