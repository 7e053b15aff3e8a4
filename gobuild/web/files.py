"""Responses for stored bytes: binaries and their gzip (streamed from disk), logs and records."""

from __future__ import annotations

from flask import Response, request, send_file

from ..spec import BuildSpec
from ..store import Result, Store
from . import accel

IMMUTABLE = "public, max-age=31536000, immutable"


def text(data: bytes, immutable: bool) -> Response:
    """A small text/plain body (a record or a build log)."""
    resp = Response(data, mimetype="text/plain")
    resp.headers["Cache-Control"] = IMMUTABLE if immutable else "no-store"
    return resp


def accepts_gzip() -> bool:
    """Whether the client takes Content-Encoding: gzip (q-values honoured, q=0 refuses)."""
    return request.accept_encodings.quality("gzip") > 0


def binary(store: Store, result: Result, spec: BuildSpec, gz: bool) -> Response:
    """The binary (gzip-encoded in transit when the client accepts it) or the .gz file itself.

    Both representations are stored, so nothing is compressed or decompressed per request, and
    send_file hands the open file to the server's wsgi.file_wrapper instead of reading it whole.
    """
    name = spec.download_filename()
    if gz:
        path = store.blob_path(result.binary_gz)
        resp = send_file(path, mimetype="application/gzip",
                         as_attachment=True, download_name=name + ".gz", conditional=True, etag=result.binary_gz)
    elif accepts_gzip():
        path = store.blob_path(result.binary_gz)
        resp = send_file(path, mimetype="application/octet-stream",
                         as_attachment=True, download_name=name, conditional=True, etag=result.binary_gz)
        resp.headers["Content-Encoding"] = "gzip"
    else:
        path = store.blob_path(result.binary)
        resp = send_file(path, mimetype="application/octet-stream",
                         as_attachment=True, download_name=name, conditional=True, etag=result.binary)
    if not gz:
        resp.headers["Vary"] = "Accept-Encoding"
    resp.headers["Cache-Control"] = IMMUTABLE
    return accel.redirect(resp, path)  # behind nginx, when configured: nginx sends the file
