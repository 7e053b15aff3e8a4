"""The one choke point that runs `go`: argv list, environment built from scratch, timeout, streamed output."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .durable import write_atomic
from .spec import GoVersion, SpecError


class GoCommandError(Exception):
    """A go command exited non-zero; carries its exit code and combined output."""

    def __init__(self, argv: Sequence[str], returncode: int, output: str) -> None:
        super().__init__(f"exit status {returncode}")
        self.argv = list(argv)
        self.returncode = returncode
        self.output = output


class GoTimeout(GoCommandError):
    """A go command ran past its deadline and was killed with its process group."""


@dataclass(frozen=True)
class GoPaths:
    """Directories shared by all go commands of one server."""

    data_dir: Path
    cache_dir: Path

    @property
    def modcache(self) -> Path:
        return self.cache_dir / "mod"

    def buildcache(self, goversion: str) -> Path:
        return self.cache_dir / "build" / goversion

    @property
    def sumdb_state(self) -> Path:
        # The go command's view of the checksum database (signed tree heads), kept across commands.
        return self.cache_dir / "sumdb"

    @property
    def cmds(self) -> Path:
        return self.data_dir / "tmp" / "cmds"


def environment(
    paths: GoPaths,
    home: Path,
    goversion: str,
    goproxy: str,
    extra: Sequence[str] = (),
    target: tuple[str, str] | None = None,
) -> dict[str, str]:
    """The complete environment of a go command: nothing is inherited from the server."""
    env = {
        "GOPROXY": goproxy,
        "CGO_ENABLED": "0",
        "GO111MODULE": "on",
        "GOTOOLCHAIN": goversion,
        "HOME": str(home),
        "GOPATH": str(home / "go"),
        "GOMODCACHE": str(paths.modcache),
        "GOCACHE": str(paths.buildcache(goversion)),
        "GOTELEMETRY": "off",
        "GOFLAGS": "",
    }
    env.update(version_environment(goversion))
    for kv in extra:
        key, _, value = kv.partition("=")
        env[key] = value
    if target:
        env["GOOS"], env["GOARCH"] = target
    return env


def version_environment(goversion: str) -> dict[str, str]:
    """Settings a Go version needs to build reproducibly (parallel compilation before go1.26)."""
    try:
        minor = GoVersion.parse(goversion).minor
    except SpecError:
        return {}
    return {"GO19CONCURRENTCOMPILATION": "0"} if minor < 26 else {}


@contextmanager
def command_home(paths: GoPaths, name: str) -> Iterator[Path]:
    """A fresh HOME for one go command, with the checksum-database state copied in and back out."""
    paths.cmds.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix=name + "-", dir=paths.cmds))
    sumdb = home / "go" / "pkg" / "sumdb"
    try:
        if paths.sumdb_state.is_dir():
            shutil.copytree(paths.sumdb_state, sumdb)
        yield home
        _save_sumdb_state(sumdb, paths.sumdb_state)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _save_sumdb_state(src: Path, dst: Path) -> None:
    """Copy each checksum-database tree head back atomically (the go command only advances them)."""
    if not src.is_dir():
        return
    for f in src.rglob("latest"):
        write_atomic(dst / f.relative_to(src), f.read_bytes())


_live: set[subprocess.Popen[bytes]] = set()  # running go commands, for stop_all()
_live_lock = threading.Lock()
_stopping = threading.Event()


def stop_all() -> None:
    """Kill every running go command with its process group, and refuse new ones (server shutdown)."""
    _stopping.set()
    with _live_lock:
        for proc in _live:
            _kill_group(proc)


def run(
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    timeout: float,
    log: BinaryIO | None = None,
) -> str:
    """Run argv, streaming combined output line by line to log; return the output or raise.

    A command killed by stop_all() raises GoTimeout: a temporary failure, never stored."""
    with _live_lock:
        if _stopping.is_set():
            raise GoTimeout(argv, -1, "not started: the server is shutting down\n")
        proc = subprocess.Popen(
            list(argv), env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )
        _live.add(proc)
    timed_out = threading.Event()

    def on_timeout() -> None:
        timed_out.set()
        _kill_group(proc)

    timer = threading.Timer(timeout, on_timeout)
    timer.start()
    chunks: list[bytes] = []
    with proc:
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                chunks.append(line)
                if log is not None:
                    log.write(line)
                    log.flush()
            returncode = proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:  # an exception on our side: leave no build running
                _kill_group(proc)
                proc.wait()
            with _live_lock:
                _live.discard(proc)
    output = b"".join(chunks).decode("utf-8", "replace")
    if _stopping.is_set() and returncode != 0:
        raise GoTimeout(argv, returncode, output + "\n\ngo command killed: the server is shutting down\n")
    if timed_out.is_set():
        raise GoTimeout(argv, returncode, output + f"\n\ngo command killed after {timeout:g}s timeout\n")
    if returncode != 0:
        raise GoCommandError(argv, returncode, output)
    return output


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill the go command and every compiler or linker it started."""
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
