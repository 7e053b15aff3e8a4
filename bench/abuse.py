"""Abuse benchmark (issue 10): does the real server keep answering while clients misbehave?

    python bench/abuse.py [--seconds 30] [--out bench/results.md]

Starts the real server (`python app.py --config <tmp config>`, waitress, the build sandbox when
bwrap works here) against a module proxy on 127.0.0.1, builds one command, then runs three
phases while a prober asks for the home page and the already-built binary every 0.5 s:

1. 200 idle connections held open (connected, nothing sent) for --seconds;
2. 50 slowloris connections for --seconds, each sending one more header byte every 2 s;
3. 40 concurrent first requests for 40 distinct builds (each a real `go install`); those answered
   503 ask again every 2 s, as a client honouring it would, until all 40 are built.

It prints, per phase, how many probes answered, their p50/p99/max latency, the server's thread
count (max), and what the attackers got; then checks that nothing was stored wrongly (no failure
stored, every 307 pointing at a stored result). Targets: every probe answers 200, p99 < 200 ms,
threads bounded. Every connection goes to 127.0.0.1, every loop is bounded in count and time, and
everything is written under one temp dir, removed at the end. Results go to bench/results.md
(section "Abuse"), replacing the previous run's.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from bench.common import write_section  # noqa: E402
from gobuild.spec import BuildSpec  # noqa: E402
from tests.modproxy import ModuleProxy, hello_module  # noqa: E402

HOST = "127.0.0.1"  # the only address this benchmark ever connects to
PROBE_INTERVAL = 0.5
TARGET_P99_MS = 200.0
SECTION = "## Abuse (bench/abuse.py)"


def go_version() -> tuple[str, str]:
    out = subprocess.run(["go", "env", "GOVERSION", "GOROOT"], capture_output=True, text=True, check=True)
    version, goroot = out.stdout.split()
    return version, goroot


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def threads_of(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Threads:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class Probes:
    """What the prober saw during one phase."""

    latencies_ms: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    threads: list[int] = field(default_factory=list)

    def row(self) -> dict[str, object]:
        lat = sorted(self.latencies_ms) or [0.0]
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        return {"probes ok": len(self.latencies_ms), "probes failed": sum(self.failures.values()),
                "p50 ms": round(statistics.median(lat), 1), "p99 ms": round(p99, 1), "max ms": round(lat[-1], 1),
                "server threads (max)": max(self.threads or [0]),
                "met": not self.failures and p99 < TARGET_P99_MS}


class Prober:
    """Asks for the home page and a built binary every PROBE_INTERVAL seconds, on fresh connections."""

    def __init__(self, base: str, binary_path: str, pid: int) -> None:
        self.base, self.binary_path, self.pid = base, binary_path, pid
        self.current = Probes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def phase(self) -> Probes:
        """The probes since the last call; a new phase starts."""
        done, self.current = self.current, Probes()
        return done

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(PROBE_INTERVAL):
            self.current.threads.append(threads_of(self.pid))
            for path in ("/", self.binary_path):
                started = time.perf_counter()
                try:
                    r = requests.get(self.base + path, timeout=5)
                    ms = (time.perf_counter() - started) * 1000
                    if r.status_code == 200:
                        self.current.latencies_ms.append(ms)
                    else:
                        self.current.failures[f"{path}: {r.status_code}"] += 1
                except requests.RequestException as e:
                    self.current.failures[f"{path}: {type(e).__name__}"] += 1


def idle_connections(port: int, count: int, seconds: float) -> dict[str, object]:
    """count connections that send nothing, held for seconds; how many the server closed meanwhile."""
    socks = []
    for _ in range(count):
        try:
            socks.append(socket.create_connection((HOST, port), timeout=5))
        except OSError:
            break
    time.sleep(seconds)
    closed = 0
    for s in socks:
        s.setblocking(False)
        try:
            if s.recv(1) == b"":
                closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
        s.close()
    return {"opened": len(socks), "closed by the server": closed}


def slowloris(port: int, count: int, seconds: float) -> dict[str, object]:
    """count connections each sending a request head one byte every 2 s, for seconds."""
    socks = []
    for _ in range(count):
        try:
            s = socket.create_connection((HOST, port), timeout=5)
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            socks.append(s)
        except OSError:
            break
    alive = list(socks)
    closed_after: list[float] = []
    started = time.monotonic()
    while alive and time.monotonic() - started < seconds:
        time.sleep(2)
        for s in list(alive):
            try:
                s.sendall(b"X")
            except OSError:
                closed_after.append(time.monotonic() - started)
                alive.remove(s)
    for s in socks:
        s.close()
    return {"opened": len(socks), "closed by the server": len(closed_after),
            "closed after (s, median)": round(statistics.median(closed_after), 1) if closed_after else None}


def first_requests(base: str, specs: list[BuildSpec], timeout: float, retry_for: float = 300.0) -> dict[str, object]:
    """One concurrent request per spec for its binary (a build each); then, like a client that
    honours 503, ask again every 2 s for those not built, until all are (at most retry_for s)."""
    lock = threading.Lock()

    def one(spec: BuildSpec, statuses: Counter[str], retry_after: set[str], built: set[BuildSpec]) -> None:
        try:
            r = requests.get(base + spec.link() + spec.download_filename(), allow_redirects=False, timeout=timeout)
            with lock:
                statuses[str(r.status_code)] += 1
                if r.status_code == 503:
                    retry_after.add(r.headers.get("Retry-After", "-"))
                elif r.status_code == 307:
                    built.add(spec)
        except requests.RequestException as e:
            with lock:
                statuses[type(e).__name__] += 1

    def wave(todo: list[BuildSpec], statuses: Counter[str], retry_after: set[str], built: set[BuildSpec]) -> None:
        threads = [threading.Thread(target=one, args=(s, statuses, retry_after, built), daemon=True) for s in todo]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout + 5)

    first: Counter[str] = Counter()
    retry_after: set[str] = set()
    built: set[BuildSpec] = set()
    wave(specs, first, retry_after, built)
    later: Counter[str] = Counter()
    started = time.monotonic()
    while len(built) < len(specs) and time.monotonic() - started < retry_for:
        time.sleep(2)
        wave([s for s in specs if s not in built], later, retry_after, built)
    return {"requests": len(specs), "first answers": dict(first), "Retry-After": sorted(retry_after) or None,
            "repeated requests": dict(later), "built": len(built)}


def stored_wrongly(data: Path, specs: list[BuildSpec]) -> list[str]:
    """Failures stored for builds that can succeed (none should be)."""
    failures = data / "failures"
    return [str(p.relative_to(failures)) for p in failures.rglob("*") if p.is_file()] if failures.is_dir() else []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="how long phases 1 and 2 hold their connections")
    parser.add_argument("--builds", type=int, default=40, help="distinct first requests in phase 3")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results.md"))
    args = parser.parse_args()
    args.seconds = min(args.seconds, 120.0)
    args.builds = min(args.builds, 100)
    goversion, goroot = go_version()
    work = Path(tempfile.mkdtemp(prefix="gobuild-abuse-"))
    proc = None
    try:
        with ModuleProxy() as proxy:
            proxy.add("example.com/hello", "v1.0.0", hello_module("example.com/hello", "v1.0.0"))
            specs = []
            for i in range(args.builds):
                mod = f"example.com/slow{i}"
                proxy.add(mod, "v1.0.0", hello_module(mod, "v1.0.0", f"slow {i}"))
                specs.append(BuildSpec(mod, "v1.0.0", "/", "linux", "amd64", goversion))
            port = free_port()
            base = f"http://{HOST}:{port}"
            config = work / "config.json"
            config.write_text(json.dumps({"listen": f"{HOST}:{port}", "data_dir": str(work / "data"),
                                          "goproxy": proxy.url, "environment": ["GOSUMDB=off"],
                                          "toolchains": {goversion: goroot}}))
            env = {k: v for k, v in os.environ.items() if k != "GOPROXY"}
            with open(work / "stderr", "wb") as err:
                proc = subprocess.Popen([sys.executable, "app.py", "--config", str(config)], cwd=ROOT, env=env,
                                        stdout=subprocess.DEVNULL, stderr=err)
            deadline = time.monotonic() + 60
            while True:
                try:
                    requests.get(base + "/robots.txt", timeout=2)
                    break
                except requests.ConnectionError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise RuntimeError((work / "stderr").read_text()[-2000:]) from None
                    time.sleep(0.1)
            hello = BuildSpec("example.com/hello", "v1.0.0", "/", "linux", "amd64", goversion)
            r = requests.get(base + hello.link() + hello.download_filename(), allow_redirects=False, timeout=600)
            assert r.status_code == 307, r.text
            binary_path = r.headers["Location"]
            sandboxed = "NOT isolated" not in requests.get(base + "/", timeout=10).text
            print(f"server pid {proc.pid}, sandbox: {'yes' if sandboxed else 'no'}, "
                  f"threads at rest: {threads_of(proc.pid)}", flush=True)

            prober = Prober(base, binary_path, proc.pid)
            prober.start()
            results: list[tuple[str, dict[str, object], dict[str, object]]] = []
            time.sleep(3)
            results.append(("baseline (3 s, nothing else)", {}, prober.phase().row()))
            print("phase 1: 200 idle connections", flush=True)
            attack = idle_connections(port, 200, args.seconds)
            results.append((f"200 idle connections, {args.seconds:g} s", attack, prober.phase().row()))
            print("phase 2: 50 slowloris connections", flush=True)
            attack = slowloris(port, 50, args.seconds)
            results.append((f"50 slowloris connections, {args.seconds:g} s", attack, prober.phase().row()))
            print(f"phase 3: {len(specs)} concurrent first requests for distinct builds", flush=True)
            started = time.monotonic()
            attack = first_requests(base, specs, timeout=600)
            attack["seconds until all built"] = round(time.monotonic() - started, 1)
            results.append((f"{len(specs)} concurrent first requests for distinct builds", attack,
                            prober.phase().row()))
            prober.stop()
            wrong = stored_wrongly(work / "data", specs)
            report = render(results, wrong, sandboxed, args)
            print(report)
            write_section(Path(args.out), SECTION, report)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(work, ignore_errors=True)
    return 0


def render(results: list[tuple[str, dict[str, object], dict[str, object]]], wrong: list[str], sandboxed: bool,
           args: argparse.Namespace) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [SECTION, "",
             f"Run {now} on {os.cpu_count()} CPUs, build sandbox {'on' if sandboxed else 'off'}: "
             f"`python bench/abuse.py --seconds {args.seconds:g} --builds {args.builds}`. The home page and an "
             f"already-built binary are probed every {PROBE_INTERVAL} s on fresh connections; target: every probe "
             f"200 with p99 < {TARGET_P99_MS:g} ms.", "",
             "| phase | probes ok | failed | p50 ms | p99 ms | max ms | server threads (max) | met | attackers got |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, attack, row in results:
        got = ", ".join(f"{k}: {v}" for k, v in attack.items()) or "-"
        lines.append(f"| {name} | {row['probes ok']} | {row['probes failed']} | {row['p50 ms']} | {row['p99 ms']} "
                     f"| {row['max ms']} | {row['server threads (max)']} | {'yes' if row['met'] else 'NO'} | {got} |")
    lines += ["", f"Stored wrongly: {', '.join(wrong) if wrong else 'nothing'} (failures stored for builds "
              "that can succeed).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
