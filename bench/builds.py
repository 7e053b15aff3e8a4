"""Section 1: build latency, cold and warm, beside a direct `go install`."""

from __future__ import annotations

import gzip
import hashlib
import random
import subprocess
import tempfile
import time
from pathlib import Path

import requests

from bench.common import (
    GOROOT,
    GOVERSION,
    REFERENCE,
    Bench,
    RssSampler,
    Server,
    Table,
    fetch_binary,
    fmt_list,
    fmt_s,
    log,
    median,
    rss_kib,
)
from gobuild.spec import BuildSpec, sum_from_digest


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


def run(bench: Bench) -> Server:
    """Cold and warm builds beside direct go install; returns the warm server, still running."""
    spec0 = bench.spec0
    url = bench.proxy.url
    cold_gb: list[float] = []
    cold_direct: list[float] = []
    cold_sums: set[str] = set()
    direct_sums: set[str] = set()
    build_rss: list[int] = []
    idle_before_build: list[int] = []
    last = bench.work / "cold0"
    for i in range(bench.cold_runs):
        d = bench.work / f"cold{i}"
        last = d
        srv = Server(bench.work, f"cold{i}", d / "data", d / "cache", url)
        srv.start()
        time.sleep(0.5)
        idle_before_build.append(rss_kib(srv.pid))

        def gb(srv: Server = srv) -> None:  # bound now: the loop rebinds srv
            with RssSampler(srv.pid) as s:
                t, sm, status = fetch_binary(srv.base, spec0)
            assert status == 200, status
            content = requests.get(srv.base + spec0.link() + spec0.download_filename(),
                                   headers={"Accept-Encoding": "identity"}).content
            bench.facts["bin_size"] = len(content)
            for level in (9, 6):
                t0 = time.perf_counter()
                gz = gzip.compress(content, compresslevel=level, mtime=0)
                bench.facts[f"gzip{level}"] = (time.perf_counter() - t0, len(gz))
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
        log(f"cold run {i + 1}/{bench.cold_runs}: gobuild {cold_gb[-1]:.2f} s, go install {cold_direct[-1]:.2f} s")
        srv.stop()

    # Warm: a new data dir, the caches of the last cold run (module cache + build cache).
    srv = Server(bench.work, "serve", bench.work / "serve" / "data", last / "cache", url)
    srv.start()
    warm_gb: list[float] = []
    warm_direct: list[float] = []
    warm_equal = True
    for k in range(1, bench.warm_runs + 1):
        spec = spec0.with_(version=f"v1.0.{k}")
        with RssSampler(srv.pid) as s:
            t, sm, status = fetch_binary(srv.base, spec)
        build_rss.append(s.max)
        assert status == 200, status
        td, smd = direct_install(spec, url, last / "direct-cache")
        warm_gb.append(t)
        warm_direct.append(td)
        warm_equal &= sm == smd
        log(f"warm run {k}/{bench.warm_runs} ({spec.version}): gobuild {t:.2f} s, go install {td:.2f} s")
    target_gb = target_direct = None
    if not bench.quick:
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
        f"{bench.facts['bin_size'] / 1e6:.1f} MB binary received) against the running server, until the last byte; "
        "it runs `go mod download` and "
        "`go install -x -v -trimpath -ldflags=-buildid=`, hashes, gzips, fsyncs and logs. Beside it, "
        "`go install -trimpath -ldflags=-buildid=` run directly with an environment built from scratch "
        "(tests/gohelp.py). Cold: fresh data_dir and cache_dir for gobuild, fresh GOCACHE/GOMODCACHE for "
        f"go install ({bench.cold_runs} runs, the two alternating who goes first). Warm: a new data_dir "
        "with the caches of the last cold run, building another version (v1.0.k) of the same module "
        f"({bench.warm_runs} runs); go install likewise with its own cold caches. Medians.",
        ["build", "gobuild", "direct go install", "ratio gobuild / go install (median of the runs' ratios)",
         "runs"],
    )
    # Each run's pair ran back to back: the median of the pair ratios is less hurt by a machine
    # whose speed drifts (a shared VM) than the ratio of the medians.
    r_cold = median([a / b for a, b in zip(cold_gb, cold_direct, strict=False)])
    r_warm = median([a / b for a, b in zip(warm_gb, warm_direct, strict=False)])
    tab.rows.append(["cold", fmt_s(m_cold), fmt_s(m_cold_d), f"{r_cold:.2f}x", str(bench.cold_runs)])
    tab.rows.append(["warm, another version", fmt_s(m_warm), fmt_s(m_warm_d), f"{r_warm:.2f}x",
                   str(bench.warm_runs)])
    if target_gb is not None and target_direct is not None:
        tab.rows.append(["warm, another target (linux/arm64)", fmt_s(target_gb), fmt_s(target_direct),
                       f"{target_gb / target_direct:.2f}x", "1"])
    tab.rows.append(["warm, the cold spec in another data dir", fmt_s(t_same), "", "", "1"])
    tab.notes.append(f"cold gobuild runs: {fmt_list(cold_gb)} s; go install: {fmt_list(cold_direct)} s; "
                     f"warm gobuild: {fmt_list(warm_gb)} s; go install: {fmt_list(warm_direct)} s")
    (g9, n9), (g6, n6) = bench.facts["gzip9"], bench.facts["gzip6"]
    tab.notes.append("gobuild does more than go install after the compile: sha256, gzip -9 of the binary, "
                     "fsyncs and the log append; before it a `go mod download`. gzip of this binary in the "
                     f"bench process: level 9 {g9:.2f} s ({n9} bytes), level 6 {g6:.2f} s ({n6} bytes)")
    tab.notes.append(f"cold is {m_cold / m_warm:.1f}x slower than warm (another version); "
                   f"original gobuild, cold: {REFERENCE['cold build']}")
    tab.notes.append(
        ("sums EQUAL: " if sums_equal else "sums DIFFER: ")
        + f"{bench.spec0} built cold ({bench.cold_runs}x, fresh data dirs) {sorted(cold_sums)}, by go install "
        f"{sorted(direct_sums)}, and warm in another data dir {warm_sum}")
    tab.notes.append(("warm sums equal go install's: yes" if warm_equal else "warm sums DIFFER from go install's")
                   + " (every warm spec above)")
    if target_gb is not None:
        tab.notes.append("another target is not much faster than cold: the standard library has to be compiled "
                       "for the new GOARCH once, by gobuild and go install alike")
    bench.tables[1].append(tab)
    bench.target("cold build within 1.1x of direct go install", f"{r_cold:.2f}x", "<= 1.1x", r_cold <= 1.1)
    bench.target("warm build 5x faster than cold", f"{m_cold / m_warm:.1f}x", ">= 5x", m_cold / m_warm >= 5)
    bench.target("cold and warm sums equal", "equal" if sums_equal else "differ", "equal", sums_equal)
    bench.facts["build_rss"] = build_rss
    bench.facts["idle_before_build"] = idle_before_build
    bench.facts["sum0"] = warm_sum
    return srv
