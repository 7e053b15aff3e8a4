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

This file is the entry; each section is a module with a run() (builds.py, serving.py, tlog.py,
memory.py, coalescing.py), and common.py holds the run's state, tables and the real server.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `python bench/run.py` finds gobuild, tests, bench

from bench import builds, coalescing, load, memory, serving, tlog  # noqa: E402
from bench.common import (  # noqa: E402
    BIG_VERSIONS,
    GOROOT,
    GOVERSION,
    HAND_NOTES,
    Bench,
    log,
)
from tests.modproxy import ModuleProxy, hello_module  # noqa: E402

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
            proxy.add("example.com/big", version, builds.big_module(size))
        srv = None
        try:
            srv = builds.run(bench)
            srv = serving.run(bench, srv)
            coalescing.run(bench, srv)
            memory.run(bench, srv)  # stops srv
            missed = [m for m in bench.facts["missed"] if m not in bench.facts["spied"]]
            if missed and not args.no_profile:
                log(f"cProfile of {missed} through the Flask test client")
                serving.profile(bench, srv.data_dir, srv.cache_dir, missed)
            tlog.run(bench)
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
