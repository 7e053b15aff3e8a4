"""Section 5: concurrent requests for one unbuilt spec coalesce into one build."""

from __future__ import annotations

import threading
import time

import requests

from bench.common import (
    Bench,
    ChildWatcher,
    Server,
    Table,
    fetch_binary,
    fmt_s,
    log,
)


def run(bench: Bench, srv: Server) -> None:
    spec = bench.spec0.with_(version="v1.1.0")
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
    zips_before = bench.proxy.requests.count(zip_path)
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
    zips = bench.proxy.requests.count(zip_path) - zips_before
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
    bench.target("coalescing: one go build for 50 requests, one sum", f"{installs} build(s), {len(sums)} sum(s)",
                "1, 1", ok)
    bench.tables[5].append(t)
    log(f"coalescing: {len(oks)}/{n} ok, {len(sums)} sum(s), {installs} go install, {downloads} go mod download")
