"""The real server for tests: `python app.py --config` (waitress) in a subprocess on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from waitress import wasyncore

from tests.conftest import GOROOT, GOVERSION

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def real_server(tmp: Path, goproxy: str, command: Sequence[str] = (sys.executable, "app.py"), cwd: Path = ROOT,
                **config: Any) -> Iterator[str]:
    """Run the server with the local Go, the given proxy and no checksum database; yield its base URL.

    command (run in cwd) is the server without its --config; the default is the checkout's app.py.
    Its stderr is printed when the block fails, to show what the server said.
    """
    proc, base = start_server(tmp, goproxy, command, cwd, **config)
    try:
        yield base
    except BaseException:
        proc.terminate()
        print(proc.communicate(timeout=30)[1].decode(errors="replace")[-5000:], file=sys.stderr)
        raise
    proc.terminate()
    proc.communicate(timeout=30)


def start_server(tmp: Path, goproxy: str, command: Sequence[str] = (sys.executable, "app.py"), cwd: Path = ROOT,
                 **config: Any) -> tuple[subprocess.Popen[bytes], str]:
    """Start the server (config as in real_server; no admin listener unless given); return it and its URL."""
    port = free_port()
    values: dict[str, Any] = {"listen": f"127.0.0.1:{port}", "data_dir": str(tmp / "data"), "goproxy": goproxy,
                              "environment": ["GOSUMDB=off"], "toolchains": {GOVERSION: GOROOT},
                              "admin_listen": ""}
    values.update(config)
    config_file = tmp / "config.json"
    config_file.write_text(json.dumps(values))
    env = {k: v for k, v in os.environ.items() if k not in ("GOPROXY", "PYTHONPATH")}
    proc = subprocess.Popen([*command, "--config", str(config_file)], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base, proc)
    except BaseException:
        proc.kill()
        print(proc.communicate(timeout=10)[1].decode(errors="replace")[-5000:], file=sys.stderr)
        raise
    return proc, base


def _wait_until_up(base: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(200):
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            requests.get(base + "/robots.txt", timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("server did not start listening within 10 s")


@contextmanager
def in_thread(server: Any, name: str | None = None) -> Iterator[str]:
    """A waitress server (made with port 0 on 127.0.0.1) running in a thread of its own: its base URL."""
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        stop_in_thread_server(server, thread)


def stop_in_thread_server(server: Any, thread: threading.Thread) -> None:
    """Stop a waitress server whose loop runs in thread, without racing that loop.

    Its sockets are closed by the loop itself (through waitress' trigger): closed from here, the
    loop's select() could see a closed descriptor and raise EBADF.
    """
    server.task_dispatcher.shutdown(timeout=5)  # first the workers, then the sockets they write to
    server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
    thread.join(5)
    assert not thread.is_alive()
