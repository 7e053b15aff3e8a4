"""Site-wide parts of every response: security headers, favicons, long-cached static files, the footer."""

from __future__ import annotations

import hashlib
import platform
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from flask import Blueprint, Response, current_app, request, send_file, url_for

bp = Blueprint("site", __name__)

IMMUTABLE = "public, max-age=31536000, immutable"

# Only our own files: no inline script or style, no other origins, no framing.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")

FAVICONS = {"/favicon.ico": "favicon.png", "/favicon-building.png": "favicon-building.png",
            "/favicon-error.png": "favicon-error.png"}


@bp.after_app_request
def security_headers(resp: Response) -> Response:
    """CSP and friends on HTML; nosniff and no referrer on everything; immutable versioned assets."""
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("Referrer-Policy", "no-referrer")
    if resp.mimetype == "text/html":
        resp.headers["Content-Security-Policy"] = CSP
        resp.headers["X-Frame-Options"] = "DENY"
    if request.endpoint == "static" and resp.status_code == 200:
        filename = (request.view_args or {}).get("filename", "")
        if request.args.get("v") == _digest(current_app.static_folder or "", filename):
            resp.headers["Cache-Control"] = IMMUTABLE
    return resp


@lru_cache(maxsize=64)
def _digest(folder: str, filename: str) -> str:
    """A short hash of a static file's content, so a changed file gets a new URL."""
    try:
        return hashlib.sha256((Path(folder) / filename).read_bytes()).hexdigest()[:12]
    except OSError:
        return ""


@bp.app_template_global()
def asset(filename: str) -> str:
    """The URL of a static file, versioned by its content (cached for a year by browsers)."""
    return url_for("static", filename=filename, v=_digest(current_app.static_folder or "", filename))


@bp.app_context_processor
def footer() -> dict[str, str]:
    """The footer line: our version and what we run on."""
    return {"footer": _footer_text()}


@lru_cache(maxsize=1)
def _footer_text() -> str:
    try:
        version = metadata.version("gobuild")
    except metadata.PackageNotFoundError:
        version = "dev"
    python = ".".join(map(str, sys.version_info[:3]))
    return f"gobuild {version} on Python {python}, {platform.system().lower()}/{platform.machine()}"


def _favicon(name: str) -> Response:
    return send_file(Path(current_app.static_folder or "") / name, mimetype="image/png", max_age=86400)


@bp.get("/favicon.ico")
def favicon() -> Response:
    """The normal favicon (a PNG, as the original serves it)."""
    return _favicon(FAVICONS["/favicon.ico"])


@bp.get("/favicon-building.png")
def favicon_building() -> Response:
    """The favicon of pages whose build is pending or running."""
    return _favicon(FAVICONS["/favicon-building.png"])


@bp.get("/favicon-error.png")
def favicon_error() -> Response:
    """The favicon of pages whose build failed."""
    return _favicon(FAVICONS["/favicon-error.png"])
