"""Section 4: memory, idle and under load, and with MALLOC_ARENA_MAX=2."""

from __future__ import annotations

import socket
import time

import requests

from bench import load
from bench.common import (
    BIG_VERSIONS,
    GOVERSION,
    IDLE_SECONDS,
    Bench,
    RssSampler,
    Server,
    Table,
    fetch_binary,
    fmt_mib,
    log,
    rss_kib,
)
from gobuild.spec import BuildSpec


def run(bench: Bench, srv: Server) -> None:
    """RSS while building and downloading binaries up to ~20x the size of hello, then with MALLOC_ARENA_MAX=2."""
    secs = max(3.0, float(round(bench.load_seconds / 2)))
    identity = {"Accept-Encoding": "identity"}
    binary_path = "/" + bench.facts["endpoints"][2][1].split("/", 3)[3]
    downloads: list[tuple[str, int]] = [(binary_path, bench.facts["bin_size"])]
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
    peaks: list[tuple[int, float]] = [(bench.facts["serve_rss"][("binary", 32)],
                                       bench.facts["serve_results"][("binary", 32)].rps)]
    for path, _ in downloads[1:]:
        with RssSampler(srv.pid) as s:
            lr = load.run(srv.base + path, 32, secs, identity, bench.engine)
        assert lr.errors == 0, lr
        peaks.append((s.max, lr.rps))
    time.sleep(IDLE_SECONDS)
    idle_after = rss_kib(srv.pid)
    rss = bench.facts["serve_rss"]
    srv.stop()
    arena = with_arena_max(bench, srv, downloads, secs)

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
    t.rows.append(["idle, just started (before any request)", fmt_mib(bench.facts["idle_fresh"]),
                   fmt_mib(arena["idle_fresh"])])
    t.rows.append(["idle, after the warm-up (20 sequential requests per endpoint)",
                   fmt_mib(bench.facts["idle_warm"]), fmt_mib(arena["idle_warm"])])
    t.rows.append([f"during the cold builds (max of {len(bench.facts['idle_before_build'])} fresh servers; "
                   f"idle before: {fmt_mib(max(bench.facts['idle_before_build']))})",
                   fmt_mib(max(bench.facts["build_rss"][: bench.cold_runs])), ""])
    t.rows.append(["during the warm builds (max)", fmt_mib(max(bench.facts["build_rss"][bench.cold_runs:])), ""])
    for size, t_build, peak in builds:
        t.rows.append([f"during the build of a {size / 2**20:.1f} MiB binary ({t_build:.1f} s)", fmt_mib(peak), ""])
    for i, ((_, size), (peak, rps)) in enumerate(zip(downloads, peaks, strict=False)):
        dur = bench.load_seconds if i == 0 else secs
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
    bench.tables[4].append(t)
    bench.target("idle RSS, just started", fmt_mib(bench.facts["idle_fresh"]), "< 60 MiB",
                bench.facts["idle_fresh"] < 60 * 1024)
    bench.target("idle RSS after serving loads", fmt_mib(idle_after), "< 60 MiB", idle_after < 60 * 1024)
    bench.target("idle RSS after serving loads, MALLOC_ARENA_MAX=2", fmt_mib(arena["idle_after"]), "< 60 MiB",
                arena["idle_after"] < 60 * 1024)
    bench.target("download RSS does not grow with binary size",
                f"{grow:+.1f} MiB peak RSS from {s1 / 2**20:.0f} to {s2 / 2**20:.0f} MiB binaries (32 clients)",
                f"flat (< 10% of 32 x {(s2 - s1) / 2**20:.0f} MiB)", grow * 1024 < 0.1 * 32 * (s2 - s1) / 1024)


def with_arena_max(bench: Bench, srv: Server, downloads: list[tuple[str, int]], secs: float) -> dict[str, float]:
    """The serving server again, with MALLOC_ARENA_MAX=2: idle, warm-up and download RSS."""
    again = Server(bench.work, "serve-arena", srv.data_dir, srv.cache_dir, srv.goproxy,
                   env={"MALLOC_ARENA_MAX": "2"})
    again.start()
    out: dict[str, float] = {}
    try:
        time.sleep(1.0)
        out["idle_fresh"] = rss_kib(again.pid)
        session = requests.Session()
        for _, url, headers in bench.facts["endpoints"]:
            path = "/" + url.split("/", 3)[3]
            for _ in range(21):
                session.get(again.base + path, headers=headers, timeout=30)
        time.sleep(0.5)
        out["idle_warm"] = rss_kib(again.pid)
        for i, (path, _) in enumerate(downloads):
            with RssSampler(again.pid) as s:
                lr = load.run(again.base + path, 32, secs, {"Accept-Encoding": "identity"}, bench.engine)
            out[f"peak{i}"], out[f"rps{i}"] = s.max, lr.rps
        time.sleep(IDLE_SECONDS)
        out["idle_after"] = rss_kib(again.pid)
    finally:
        again.stop()
    log(f"MALLOC_ARENA_MAX=2: idle {out['idle_fresh'] / 1024:.1f} MiB, "
        f"after loads {out['idle_after'] / 1024:.1f} MiB")
    return out


def sndbuf_len() -> int:
    """SO_SNDBUF of an accepted loopback TCP socket: what waitress reads per send of a file."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with socket.create_connection(listener.getsockname()):
            conn, _ = listener.accept()
            with conn:
                return int(conn.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))
