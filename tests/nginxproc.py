"""Debian's nginx with the shipped deploy/nginx.conf, as this process' child on a free 127.0.0.1 port."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.realserver import ROOT, _wait_until_up, free_port

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

MAIN = """\
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    default_type application/octet-stream;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
{server}
}}
"""


def config(tmp: Path, port: int, upstream: str, data_dir: Path) -> str:
    """A whole nginx.conf around deploy/nginx.conf with its three EDIT values filled in."""
    server = (ROOT / "deploy" / "nginx.conf").read_text()
    for old, new in (("listen 80;", f"listen 127.0.0.1:{port};"),
                     ("server 127.0.0.1:8000;", f"server {upstream};"),
                     ("/srv/gobuild/data/blobs/", f"{data_dir.resolve()}/blobs/"),
                     ("/var/cache/nginx/gobuild", f"{tmp}/cache")):
        assert old in server, old
        server = server.replace(old, new)
    return MAIN.format(tmp=tmp, server=server)


@contextmanager
def nginx(tmp: Path, upstream: str, data_dir: Path) -> Iterator[str]:
    """Run nginx (one process, no user switch) in front of upstream (host:port); yield its base URL."""
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(config(tmp, port, upstream, data_dir))
    proc = subprocess.Popen([NGINX, "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "error.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base, proc)  # /robots.txt through nginx: up when both are
        yield base
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
