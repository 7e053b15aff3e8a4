"""An HTTP load generator for the benchmark: Debian's `wrk` when installed, else Python threads.

Both keep one keep-alive connection per client, run for a fixed time against one URL on the
loopback interface only, and report requests/s, p50 and p99 latency and errors (a socket
error, a timeout or any status other than 200 is an error for the Python engine; wrk counts
status >= 400 and socket errors, so run.py checks beforehand that each URL answers 200).

    python bench/load.py [--engine auto|wrk|python] [-c 4] [-d 10] [-H 'Name: value'] URL

prints the result as JSON. The Python engine runs in its own process (this file run as a
script) so that the benchmark's own threads do not share its interpreter lock.
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import json
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import asdict, dataclass


@dataclass
class LoadResult:
    """What one bounded load run measured."""

    engine: str
    url: str
    connections: int
    seconds: float  # wall time of the run
    requests: int  # completed responses (any status)
    errors: int
    rps: float
    p50_ms: float
    p99_ms: float
    detail: str = ""  # what the errors were, if any


def check_loopback(url: str) -> tuple[str, int, str]:
    """(host, port, path-with-query) of url; refuse anything that is not http on a loopback address."""
    u = urllib.parse.urlsplit(url)
    host = u.hostname or ""
    if u.scheme != "http":
        raise ValueError(f"only http:// URLs: {url}")
    if host != "localhost":
        try:
            if not ipaddress.ip_address(host).is_loopback:
                raise ValueError
        except ValueError:
            raise ValueError(f"load is only ever aimed at the loopback interface, not {host!r}") from None
    path = u.path or "/"
    if u.query:
        path += "?" + u.query
    return host, u.port or 80, path


def have_wrk() -> bool:
    """Whether the wrk binary is on PATH."""
    return shutil.which("wrk") is not None


def run(url: str, connections: int, seconds: float, headers: dict[str, str] | None = None,
        engine: str = "auto") -> LoadResult:
    """Load url with `connections` concurrent keep-alive clients for `seconds`."""
    check_loopback(url)
    headers = headers or {}
    if engine == "auto":
        engine = "wrk" if have_wrk() else "python"
    if engine == "wrk":
        return _run_wrk(url, connections, seconds, headers)
    if engine == "python":
        argv = [sys.executable, __file__, "--engine", "python-inline", "-c", str(connections), "-d", str(seconds)]
        for k, v in headers.items():
            argv += ["-H", f"{k}: {v}"]
        out = subprocess.run([*argv, url], capture_output=True, text=True, timeout=seconds + 120, check=True)
        return LoadResult(**json.loads(out.stdout))
    if engine == "python-inline":
        return _run_python(url, connections, seconds, headers)
    raise ValueError(f"unknown engine {engine!r}")


# --- wrk --------------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not m:
        raise ValueError(f"cannot parse wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def _run_wrk(url: str, connections: int, seconds: float, headers: dict[str, str]) -> LoadResult:
    # Two wrk threads at most: the machine has 2 cores and the server needs them too.
    argv = ["wrk", "-t", str(min(2, connections)), "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
            "--timeout", "10s", "--latency"]
    for k, v in headers.items():
        argv += ["-H", f"{k}: {v}"]
    started = time.monotonic()
    out = subprocess.run([*argv, url], capture_output=True, text=True, timeout=seconds + 60)
    elapsed = time.monotonic() - started
    text = out.stdout
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr.strip() or text.strip()}")
    total = re.search(r"(\d+) requests in ([\d.]+\w+)", text)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    p50 = re.search(r"^\s+50%\s+(\S+)", text, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", text, re.M)
    if not (total and rps and p50 and p99):
        raise RuntimeError(f"cannot parse wrk output:\n{text}")
    errors, detail = 0, []
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if sock:
        errors += sum(int(x) for x in sock.groups())
        detail.append(sock.group(0))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if non2xx:
        errors += int(non2xx.group(1))
        detail.append(non2xx.group(0))
    return LoadResult("wrk", url, connections, round(elapsed, 2), int(total.group(1)), errors,
                      float(rps.group(1)), _ms(p50.group(1)), _ms(p99.group(1)), "; ".join(detail))


# --- Python threads ---------------------------------------------------------------------------


def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    k = max(0, min(len(sorted_values) - 1, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]


def _run_python(url: str, connections: int, seconds: float, headers: dict[str, str]) -> LoadResult:
    host, port, path = check_loopback(url)
    start = threading.Barrier(connections + 1)
    latencies: list[list[float]] = [[] for _ in range(connections)]
    failures: list[dict[str, int]] = [{} for _ in range(connections)]
    deadline = [0.0]

    def client(i: int) -> None:
        lat, fail = latencies[i], failures[i]
        conn: http.client.HTTPConnection | None = None
        start.wait()
        while True:
            t0 = time.perf_counter()
            if t0 >= deadline[0]:
                break
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(host, port, timeout=10)
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
                resp.read()
                lat.append(time.perf_counter() - t0)
                if resp.status != 200:
                    fail[f"status {resp.status}"] = fail.get(f"status {resp.status}", 0) + 1
                if resp.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                fail[type(e).__name__] = fail.get(type(e).__name__, 0) + 1
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(connections)]
    for t in threads:
        t.start()
    t_start = time.perf_counter()
    deadline[0] = t_start + seconds
    start.wait()
    for t in threads:
        t.join(seconds + 30)
    elapsed = time.perf_counter() - t_start
    all_lat = sorted(x for lat in latencies for x in lat)
    errs: dict[str, int] = {}
    for f in failures:
        for k, v in f.items():
            errs[k] = errs.get(k, 0) + v
    # Requests that got a response count; a response with a non-200 status counts as an error too.
    n_errors = sum(errs.values())
    return LoadResult("python", url, connections, round(elapsed, 2), len(all_lat), n_errors,
                      round(len(all_lat) / elapsed, 1), round(_percentile(all_lat, 50) * 1e3, 3),
                      round(_percentile(all_lat, 99) * 1e3, 3), ", ".join(f"{k}: {v}" for k, v in sorted(errs.items())))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--engine", default="auto", choices=["auto", "wrk", "python", "python-inline"])
    p.add_argument("-c", "--connections", type=int, default=4)
    p.add_argument("-d", "--seconds", type=float, default=10.0)
    p.add_argument("-H", "--header", action="append", default=[], help="'Name: value'")
    p.add_argument("url")
    a = p.parse_args(argv)
    headers = dict(h.split(":", 1) for h in a.header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    print(json.dumps(asdict(run(a.url, a.connections, a.seconds, headers, a.engine))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
