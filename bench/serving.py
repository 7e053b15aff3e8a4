"""Section 2: serving built results under load, and profiles of endpoints that miss their target."""

from __future__ import annotations

import cProfile
import hashlib
import io
import os
import pstats
import re
import shutil
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import requests

from bench import load
from bench.common import (
    ENGINE_METHOD,
    GOROOT,
    GOVERSION,
    REFERENCE,
    ROOT,
    TARGET_FACTOR,
    Bench,
    RssSampler,
    Server,
    Table,
    log,
    rss_kib,
    synthetic_record,
)
from gobuild.spec import sum_from_digest
from gobuild.tlog.server import TransparencyLog


def run(bench: Bench, srv: Server) -> Server:
    """Restart the warm server with 256+ synthetic records in its log, then load each URL."""
    srv.stop()
    tlog_dir = srv.data_dir / "tlog"
    signer = (tlog_dir / "signer.key").read_text()
    with TransparencyLog(tlog_dir, signer) as tl:
        i = 0
        while tl.size() < 300:
            tl.append(synthetic_record(i))
            i += 1
        bench.facts["serve_log_size"] = tl.size()
    start_s = srv.start()
    time.sleep(1.0)
    bench.facts["idle_fresh"] = rss_kib(srv.pid)
    bench.facts["start_small"] = start_s

    spec, s = bench.spec0, bench.facts["sum0"]
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
    bench.facts["idle_warm"] = rss_kib(srv.pid)

    results: dict[tuple[str, int], load.LoadResult] = {}
    rss: dict[tuple[str, int], int] = {}
    cpu: dict[tuple[str, int], float] = {}
    for conns in (4, 32):
        for label, url, headers in endpoints:
            with RssSampler(srv.pid) as sampler:
                c0 = cpu_seconds(srv.pid)
                lr = load.run(url, conns, bench.load_seconds, headers, bench.engine)
                cpu[(label, conns)] = (cpu_seconds(srv.pid) - c0) / lr.seconds
            results[(label, conns)] = lr
            rss[(label, conns)] = sampler.max
            log(f"{label} x{conns}: {lr.rps:.0f} req/s, p50 {lr.p50_ms:.2f} ms, p99 {lr.p99_ms:.2f} ms, "
                f"errors {lr.errors}")
    bench.facts["serve_rss"] = rss
    bench.facts["serve_results"] = results
    bench.facts["endpoints"] = endpoints

    t = Table(
        "2. Serving built results",
        f"`{bench.engine}` ({ENGINE_METHOD[bench.engine]}) "
        f"against one URL for {bench.load_seconds:g} s with 4 and then 32 concurrent clients; the server "
        f"(waitress, 32 threads) and the load generator share the 2 cores. The spec is {spec}, its log "
        f"has {bench.facts['serve_log_size']} records (synthetic ones appended with TransparencyLog.append "
        "before the start). Every URL answered 200 before it was loaded; errors = socket errors + "
        "status >= 400" + (" (wrk)" if bench.engine == "wrk" else " + any non-200") + ".",
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
                bench.target(f"{label} req/s (4 clients) vs original", f"{lr.rps:.0f}", f">= {want:.0f}",
                            lr.rps >= want)
    total_errors = sum(r.errors for r in results.values())
    bench.target("serving errors", str(total_errors), "0", total_errors == 0)
    gz4 = results[(".gz", 4)]
    t.notes.append(f"the original's .gz figure is for a 1 MB file (~{REFERENCE['.gz']:.0f} MB/s); ours is "
                   f"{sizes['.gz'] / 1e6:.1f} MB: {gz4.rps * sizes['.gz'] / 1e6:.0f} MB/s")
    t.notes.append("server CPU: user + system time of the server process / wall time of the run (100% = one "
                   "core); the Python interpreter lock lets one thread run Python at a time, so ~100% is "
                   "its ceiling apart from system time spent in copies and socket calls")
    t.notes.append("the binary is served from the stored uncompressed blob with send_file "
                   "(wsgi.file_wrapper): nothing is gunzipped per request; Content-Length = "
                   f"{sizes['binary']} bytes, no Content-Encoding, sum checked")
    bench.tables[2].append(t)
    missed = [label for (label, conns), r in results.items()
              if conns == 4 and isinstance(REFERENCE.get(label), float)
              and r.rps < REFERENCE[label] * TARGET_FACTOR.get(label, 1.0)]  # type: ignore[operator]
    bench.facts["missed"] = missed
    bench.facts["spied"] = []
    if missed and not bench.args.no_profile and shutil.which("py-spy"):
        for label, url, headers in endpoints:
            if label in missed:
                log(f"py-spy on the server while loading {label}")
                if (table := spy(bench, srv, label, url, headers)) is not None:
                    bench.tables[2].append(table)
                    bench.facts["spied"].append(label)
    return srv


def spy(bench: Bench, srv: Server, label: str, url: str, headers: dict[str, str]) -> Table | None:
    """Sample the real server's stacks with py-spy while 4 clients load url; top functions.

    Two recordings under the same load: only the thread holding the interpreter lock (where
    the Python CPU goes), then every thread not idle (also time in system calls, and waiting
    for the interpreter lock, which counts where the thread waits).
    """
    secs = 4
    loader = threading.Thread(target=load.run, args=(url, 4, 2 * secs + 3, headers, bench.engine))
    loader.start()
    time.sleep(1.0)
    views = []
    for flags in (["--gil"], []):
        out = bench.work / "py-spy.txt"
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
        f"left out), while {bench.engine} loads the URL with 4 clients. Share of the samples in which the "
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


def profile(bench: Bench, data_dir: Path, cache_dir: Path, labels: list[str]) -> None:
    """cProfile the app (Flask test client, no waitress) on the endpoints that missed their target."""
    from gobuild import config as configmod
    from gobuild.web import create_app

    cfg = configmod.Config(data_dir=str(data_dir), cache_dir=str(cache_dir), goproxy=bench.proxy.url,
                           environment=("GOSUMDB=off",), toolchains={GOVERSION: GOROOT}).with_overrides()
    import logging
    app = create_app(cfg)
    logging.getLogger().setLevel(logging.WARNING)
    client = app.test_client()
    for label, url, headers in bench.facts["endpoints"]:
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
        bench.tables[2].append(t)


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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
