"""Behind nginx: hand a stored file's sending to nginx with X-Accel-Redirect (config accel_redirect_prefix).

Flask still decides everything about the answer (which blob, its headers, 304 for a matching
ETag); only the bytes of a 200 come from nginx, which reads the file from an internal location
mapping <data_dir>/blobs/ (deploy/nginx.conf). Off unless configured, so the standalone server
sends the file itself; and only for requests nginx marks (HEADER, set by deploy/nginx.conf), so
that a client of gobuild's own port (a verifier, `gobuild get`, curl on the host) still gets the
file, not an empty 200.
"""

from __future__ import annotations

from pathlib import Path

from flask import Response, request

from .current import services

HEADER = "X-Gobuild-Accel"  # nginx sets it to 1 on every request it proxies

# What nginx takes from us for the file it sends; it sets Content-Length, Last-Modified and ranges itself.
KEPT = ("Content-Type", "Content-Disposition", "Content-Encoding", "Cache-Control", "Vary", "ETag",
        "Last-Modified", "X-Content-Type-Options", "Referrer-Policy")


def redirect(resp: Response, path: Path) -> Response:
    """resp (send_file's answer for path) as an X-Accel-Redirect to path: when configured, a 200, through nginx."""
    s = services()
    prefix = s.config.accel_redirect_prefix
    if not prefix or resp.status_code != 200 or request.headers.get(HEADER) != "1":
        return resp
    resp.close()  # the open file send_file made: nginx opens its own
    out = Response(b"", 200)
    out.headers.clear()
    for name in KEPT:
        if name in resp.headers:
            out.headers[name] = resp.headers[name]
    out.headers["X-Accel-Redirect"] = prefix + path.relative_to(s.store.root / "blobs").as_posix()
    return out
