"""A real redis-server and real `gobuild worker` processes for the queue tests, on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
import redis
from rq import Worker

from tests.conftest import GOROOT, GOVERSION
from tests.realserver import ROOT, free_port

SECRET = "a-test-secret-of-more-than-16-characters"
HEARTBEAT = 1  # queue_heartbeat_seconds of the test workers and coordinators


@contextmanager
def redis_server(tmp: Path) -> Iterator[str]:
    """Debian's redis-server on a random port with its files in tmp; yields its redis:// URL."""
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail("the queue tests need redis-server (bash tests/setup.sh installs Debian's)")
    port = free_port()
    proc = subprocess.Popen([exe, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(tmp), "--save", "",
                             "--appendonly", "no", "--protected-mode", "yes"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        conn = redis.Redis.from_url(url)
        for _ in range(100):
            try:
                conn.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        else:
            raise RuntimeError("redis-server did not answer within 5 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def secret_file(tmp: Path) -> Path:
    path = tmp / "queue-secret"
    path.write_text(SECRET + "\n")
    return path


def start_worker(tmp: Path, name: str, queue: str, goproxy: str, **config: Any) -> subprocess.Popen[bytes]:
    """`python -m gobuild worker` with its own data dir and caches under tmp/name; output in tmp/name/worker.log."""
    home = tmp / name
    home.mkdir(parents=True, exist_ok=True)
    values: dict[str, Any] = {"data_dir": str(home / "data"), "cache_dir": str(home / "cache"), "goproxy": goproxy,
                              "environment": ["GOSUMDB=off"], "toolchains": {GOVERSION: GOROOT}, "queue": queue,
                              "queue_secret_file": str(secret_file(tmp)), "queue_heartbeat_seconds": HEARTBEAT,
                              "admin_listen": ""}
    values.update(config)
    (home / "config.json").write_text(json.dumps(values))
    env = {k: v for k, v in os.environ.items() if k != "GOPROXY"}
    env["PYTHONPATH"] = str(ROOT)
    with open(home / "worker.log", "wb") as log:
        return subprocess.Popen([sys.executable, "-m", "gobuild", "worker", "--config", str(home / "config.json")],
                                cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_for_workers(queue: str, count: int, timeout: float = 60.0) -> None:
    conn = redis.Redis.from_url(queue)
    deadline = time.monotonic() + timeout
    while len(Worker.all(connection=conn)) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{count} workers did not register within {timeout:g}s")
        time.sleep(0.1)


def descendants(pid: int) -> list[int]:
    """pid and every process below it (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rpartition(")")[2].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, []))
    return found


def kill_machine(proc: subprocess.Popen[bytes]) -> None:
    """What a machine that vanishes does to its worker: SIGKILL to it and every process it started."""
    for pid in descendants(proc.pid):
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait(10)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        kill_machine(proc)
