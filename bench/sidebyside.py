"""Issue 16's table from one run: ours before the fast path (Flask only), standalone, behind nginx, bare waitress.

    python bench/sidebyside.py [--seconds 5] [--runs 1] [--original DIR] [--out bench/results.md]

One hello build and a log of 300 records (synthetic ones appended like section 2). For each
server mode, 4 wrk clients load each URL for --seconds; then memory: RSS at idle, the peak while
32 clients download the binary, and RSS 10 s after. The original gobuild's figures measured earlier
are quoted from issue 16; with --original (a checkout of its source) it is also built and measured
in this run, on the same build, machine and load (bench/original.py). The bare waitress app
(bench/bare.py) answers the same bytes and headers with no Flask: waitress' own ceiling.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests

from bench import load, original
from bench.common import (
    GOROOT,
    GOVERSION,
    IDLE_SECONDS,
    ROOT,
    RssSampler,
    Server,
    fetch_binary,
    free_port,
    log,
    rss_kib,
    synthetic_record,
)
from gobuild.spec import BuildSpec
from gobuild.tlog.server import TransparencyLog
from tests.modproxy import ModuleProxy, hello_module

# Issue 16, "measured side by side in one run" (2 cores, loopback, wrk, 4 clients): the original gobuild.
ORIGINAL = {"result page": 682.0, "binary": 159.0, "/tlog/lookup": 149.0, ".gz": 2104.0, "record": 17933.0,
            "/tlog/latest": 24116.0, "data tile": 25390.0}
ORIGINAL_RSS = {"idle": "18 MiB", "32 clients": "27 MiB"}
SMALL = ("record", "/tlog/latest", "data tile", "full tile")  # targets: >= 80% of bare waitress
SECTION = "## Side by side with the original (issue 16)"
ORIGINAL_RUN = "original (this run)"
AFTER_SECONDS = 10.0


def endpoints(spec: BuildSpec, sum_: str) -> list[tuple[str, str, dict[str, str]]]:
    res = spec.result_link(sum_)
    name = spec.download_filename()
    return [("result page", res, {}), ("binary", res + name, {"Accept-Encoding": "identity"}),
            (".gz", res + name + ".gz", {}), ("/tlog/lookup", "/tlog/lookup/" + str(spec), {}),
            ("record", res + "record", {}), ("/tlog/latest", "/tlog/latest", {}),
            ("data tile", "/tlog/tile/8/data/000", {}), ("full tile", "/tlog/tile/8/0/000", {})]


def configure(srv: Server, **values: Any) -> None:
    cfg = json.loads(srv.config.read_text())
    cfg.update(values)
    srv.config.write_text(json.dumps(cfg))


@contextmanager
def nginx_in_front(work: Path, srv: Server) -> Iterator[str]:
    from tests.nginxproc import nginx
    with nginx(work / "nginx", f"127.0.0.1:{srv.port}", srv.data_dir) as base:
        yield base


def load_all(base: str, eps: list[tuple[str, str, dict[str, str]]], seconds: float, runs: int,
             only: tuple[str, ...] = ()) -> dict[str, float]:
    """Best of runs req/s per endpoint with 4 clients (the machine is shared: the best is the least disturbed)."""
    out: dict[str, float] = {}
    session = requests.Session()
    for label, path, headers in eps:
        if only and label not in only:
            continue
        for _ in range(20):
            r = session.get(base + path, headers=headers, timeout=60)
            assert r.status_code == 200, (label, r.status_code, r.text[:200])
        best = 0.0
        for _ in range(runs):
            lr = load.run(base + path, 4, seconds, headers, "wrk")
            assert lr.errors == 0, (label, lr)
            best = max(best, lr.rps)
        out[label] = best
        log(f"  {label}: {best:.0f} req/s")
    return out


def memory(pid: int, base: str, binary: str, seconds: float) -> dict[str, int]:
    time.sleep(IDLE_SECONDS)
    idle = rss_kib(pid)
    with RssSampler(pid) as s:
        lr = load.run(base + binary, 32, seconds, {"Accept-Encoding": "identity"}, "wrk")
    assert lr.errors == 0, lr
    time.sleep(AFTER_SECONDS)
    return {"idle": idle, "peak": s.max, "after": rss_kib(pid), "rps32": int(lr.rps)}


def measure_original(src: Path, work: Path, proxy: str, spec: BuildSpec, sum_: str,
                     eps: list[tuple[str, str, dict[str, str]]], seconds: float,
                     runs: int) -> tuple[dict[str, float], dict[str, int]]:
    """The original gobuild on the same build: its req/s per endpoint and its memory."""
    binary = original.build(src, work)
    with original.running(binary, work, proxy) as (base, pid):
        _, its_sum, status = fetch_binary(base, spec)
        assert (status, its_sum) == (200, sum_), (status, its_sum, sum_)  # the same bytes as ours
        log("the original gobuild")
        return load_all(base, original.endpoints(eps), seconds, runs), memory(pid, base, eps[1][1], seconds)


def in_process(data: Path, cache: Path, proxy: str, eps: list[tuple[str, str, dict[str, str]]]) -> list[str]:
    """Where a small request's time goes without sockets: Flask vs the fast path, per request, and cProfile of Flask."""
    from werkzeug.test import EnvironBuilder
    from werkzeug.wsgi import FileWrapper

    from gobuild import config as configmod
    from gobuild.web import create_app
    from gobuild.web.fastpath import FastPath

    cfg = configmod.Config(data_dir=str(data), cache_dir=str(cache), goproxy=proxy, environment=("GOSUMDB=off",),
                           toolchains={GOVERSION: GOROOT}).with_overrides()
    import logging
    app = create_app(cfg)
    logging.getLogger().setLevel(logging.WARNING)
    fast = app.wsgi_app
    assert isinstance(fast, FastPath)
    lines = ["| endpoint | Flask (no server) | fast path (no server) |", "|---|---|---|"]
    profile_of = None
    for label, path, headers in eps:
        if label not in SMALL:
            continue
        env0 = EnvironBuilder(path=path, headers=headers).get_environ()

        def one(wsgi: Any, env0: dict[str, Any] = env0) -> None:
            env = dict(env0)
            env["wsgi.file_wrapper"] = FileWrapper
            body = wsgi(env, lambda *a: None)
            b"".join(body)
            getattr(body, "close", lambda: None)()

        one(fast)
        n = 2000
        t_flask = min(timeit.repeat(lambda: one(fast.app), number=n, repeat=3)) / n
        t_fast = min(timeit.repeat(lambda: one(fast), number=n, repeat=3)) / n
        lines.append(f"| {label} | {t_flask * 1e6:.0f} µs | {t_fast * 1e6:.1f} µs |")
        if label == "record":
            prof = cProfile.Profile()
            prof.enable()
            for _ in range(n):
                one(fast.app)
            prof.disable()
            profile_of = prof
    if profile_of is not None:
        st = pstats.Stats(profile_of)
        rows = sorted(st.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:10]  # type: ignore[attr-defined]
        lines += ["", "cProfile of the record through Flask (2000 requests, top functions by own time):", "",
                  "| function | own time per request |", "|---|---|"]
        for (file, line, fn), (_cc, _nc, tt, _ct, _) in rows:
            short = file.split("site-packages/")[-1].replace(str(ROOT) + "/", "")
            lines.append(f"| `{short}:{line} {fn}` | {tt / n * 1e6:.1f} µs |")
    return lines


def bare(work: Path, base: str, eps: list[tuple[str, str, dict[str, str]]], seconds: float,
         runs: int) -> dict[str, float]:
    """The small answers, fetched from our server, served by bench/bare.py; loaded like ours."""
    answers = {}
    for label, path, headers in eps:
        if label in SMALL:
            r = requests.get(base + path, headers=headers, timeout=30)
            hs = [(k, v) for k, v in r.raw.headers.items() if k.lower() not in ("date", "server", "connection")]
            answers[path] = ("200 OK", hs, r.content.decode("latin-1"))
    (work / "bare.json").write_text(json.dumps(answers))
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "bare.py"), str(port), str(work / "bare.json")],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                requests.get(url + "/", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.05)
        return load_all(url, eps, seconds, runs, SMALL)
    finally:
        proc.terminate()
        proc.wait(10)


def run(seconds: float, runs: int, original_src: Path | None) -> str:
    work = Path(tempfile.mkdtemp(prefix="gobuild-sbs-"))
    try:
        with ModuleProxy() as proxy:
            proxy.add("example.com/hello", "v1.0.0", hello_module("example.com/hello", "v1.0.0"))
            spec = BuildSpec("example.com/hello", "v1.0.0", "/", "linux", "amd64", GOVERSION)
            srv = Server(work, "sbs", work / "data", work / "cache", proxy.url)
            srv.start()
            _, sum_, status = fetch_binary(srv.base, spec)
            assert status == 200
            srv.stop()
            tlog_dir = srv.data_dir / "tlog"
            with TransparencyLog(tlog_dir, (tlog_dir / "signer.key").read_text()) as tl:
                i = 0
                while tl.size() < 300:
                    tl.append(synthetic_record(i))
                    i += 1
            eps = endpoints(spec, sum_)
            rps: dict[str, dict[str, float]] = {}
            mem: dict[str, dict[str, int]] = {}
            if original_src is not None:
                rps[ORIGINAL_RUN], mem[ORIGINAL_RUN] = measure_original(original_src, work, proxy.url, spec, sum_,
                                                                        eps, seconds, runs)
            log("in-process: Flask vs fast path")
            profile = in_process(srv.data_dir, srv.cache_dir, proxy.url, eps)
            modes = {"Flask only (before)": {"fast_path": False}, "ours standalone": {"fast_path": True},
                     "ours behind nginx": {"fast_path": True, "accel_redirect_prefix": "/_blobs/"}}
            for mode, values in modes.items():
                log(mode)
                configure(srv, **values)
                srv.start()
                try:
                    front = nginx_in_front(work, srv) if "nginx" in mode else nullcontext(srv.base)
                    with front as base:
                        rps[mode] = load_all(base, eps, seconds, runs)
                        mem[mode] = memory(srv.pid, base, eps[1][1], seconds)
                        if mode == "ours standalone":
                            log("bare waitress")
                            rps["bare waitress"] = bare(work, base, eps, seconds, runs)
                finally:
                    srv.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report(rps, mem, profile, seconds, runs)


def report(rps: dict[str, dict[str, float]], mem: dict[str, dict[str, int]], profile: list[str],
           seconds: float, runs: int) -> str:
    before, ours, nginx, bare_ = (rps["Flask only (before)"], rps["ours standalone"], rps["ours behind nginx"],
                                  rps["bare waitress"])
    measured = rps.get(ORIGINAL_RUN, {})
    against = "the original measured in this run" if measured else "the original's figures quoted from issue 16"
    lines = [SECTION, "",
             f"`python bench/sidebyside.py --seconds {seconds:g} --runs {runs}"
             f"{' --original DIR' if measured else ''}`: wrk, 4 clients, {seconds:g} s per URL, best of {runs}; "
             "the servers, nginx and wrk share the 2 cores with whatever else runs (noisy: compare columns of "
             "the same run). **original (issue 16)**: figures *measured earlier*, quoted from the issue. "
             + ("**original (this run)**: the original gobuild built from its source (bench/original.py) and "
                "loaded in this run on the same binary; its log holds only that build, so its tiles are the "
                "partial ones (`000.p/1`). " if measured else "")
             + f"Ratios are against {against}. **bare waitress**: bench/bare.py, a WSGI app with no Flask "
             "returning the same bytes and headers (waitress' own ceiling).", "",
             "| endpoint (4 clients) | original (issue 16) | original (this run) | ours before (Flask only) "
             "| ours standalone | ours/original | bare waitress | ours/bare | ours behind nginx | nginx/original |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for label in ours:
        quoted = ORIGINAL.get(label)
        orig = measured.get(label) if measured else quoted
        b = bare_.get(label)
        lines.append(
            f"| {label} | {_num(quoted)} | {_num(measured.get(label))} | {before[label]:.0f} | {ours[label]:.0f} | "
            f"{_ratio(ours[label], orig)} | {_num(b)} | {f'{ours[label] / b:.0%}' if b else ''} | "
            f"{nginx[label]:.0f} | {_ratio(nginx[label], orig)} |")

    def mib(mode: str, key: str) -> str:
        return f"{mem[mode][key] / 1024:.0f} MiB" if mode in mem else ""

    for key, label in (("idle", "idle RSS"), ("peak", "RSS while 32 clients download"),
                       ("after", f"RSS {AFTER_SECONDS:g} s after")):
        quoted_rss = ORIGINAL_RSS.get("idle" if key == "idle" else "32 clients", "") if key != "after" else ""
        lines.append(f"| {label} | {quoted_rss} | {mib(ORIGINAL_RUN, key)} | {mib('Flask only (before)', key)} | "
                     f"{mib('ours standalone', key)} | | | | {mib('ours behind nginx', key)} (app only) | |")
    lines += ["", "RSS: VmRSS of the server process (behind nginx: without nginx' own processes); the peak is "
              "sampled every 20 ms while 32 wrk clients download the binary (identity) for "
              f"{seconds:g} s; idle is {IDLE_SECONDS:g} s after the last request.", "",
              "Where a small request's time goes, in one process without sockets (the rest of 1/(req/s) "
              "is waitress, the sockets and wrk on the same cores):", "", *profile]
    return "\n".join(lines) + "\n"


def _num(value: float | None) -> str:
    return f"{value:.0f}" if value else ""


def _ratio(ours: float, original: float | None) -> str:
    return f"{ours / original:.2f}x" if original else ""


def write(out: Path, section: str) -> None:
    """Put the section into out, replacing an earlier run's (the rest of the file stays)."""
    old = out.read_text() if out.exists() else ""
    if SECTION in old:
        head, _, rest = old.partition(SECTION)
        tail = rest[rest.find("\n## "):] if "\n## " in rest else ""
        old = head.rstrip() + "\n\n" + section + tail
    else:
        old = old.rstrip() + "\n\n" + section
    out.write_text(old.lstrip())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=5.0, help="load per URL and mode")
    p.add_argument("--runs", type=int, default=1, help="runs per URL and mode; the best is reported")
    p.add_argument("--original", type=Path, help="a checkout of the original gobuild: build and measure it too")
    p.add_argument("--out", default=str(ROOT / "bench" / "results.md"), help="the results file to update")
    args = p.parse_args(argv)
    if not load.have_wrk() or not shutil.which("nginx"):
        p.error("needs Debian's wrk and nginx (tests/setup.sh installs nginx; apt-get install wrk)")
    section = run(args.seconds, args.runs, args.original)
    print(section)
    write(Path(args.out), section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
