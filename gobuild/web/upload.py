"""The coordinator's internal endpoint where queue workers post the binaries they built.

Only a worker holding the shared secret can post (HMAC over job, the run's token, spec and the
body's sha256), only for a job that runs now, and at most queue_max_upload_mb. The binary is hashed here; the sum a
worker may claim is never read. Answers are plain text, never a traceback.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from flask import Blueprint, Response, jsonify, request

from .. import queueproto
from ..builds import Unreproducible
from ..failures import QueueUnreachable
from ..spec import BuildSpec, SpecError
from .current import services

bp = Blueprint("upload", __name__)


def _text(body: str, status: int) -> Response:
    resp = Response(body + "\n", status, mimetype="text/plain")
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.post(queueproto.UPLOAD_PATH + "<job_id>")
def upload(job_id: str) -> Response:
    """Check the headers against the running job, then read the body: a refused upload is never read."""
    s = services()
    if s.queue is None:
        return _text("this server has no build queue", 404)
    signature = request.headers.get(queueproto.SIGNATURE_HEADER, "")
    spec_text = request.headers.get(queueproto.SPEC_HEADER, "")
    if not signature or not spec_text:
        return _text(f"an upload needs the {queueproto.SIGNATURE_HEADER} and {queueproto.SPEC_HEADER} headers", 401)
    if not queueproto.well_formed(signature):
        return _text("bad signature", 403)
    length = request.content_length
    if length is None:
        return _text("an upload needs a Content-Length", 411)
    if length > s.config.queue_max_upload_mb << 20:
        return _text(f"binary larger than {s.config.queue_max_upload_mb} MiB", 413)
    try:
        spec = BuildSpec.parse(spec_text, s.targets)
    except SpecError as e:
        return _text(f"bad build spec: {e}", 400)
    try:
        running = s.queue.running(job_id) if queueproto.job_id(spec) == job_id else None
        if running is None or running[0] != spec_text:
            return _text("no such build is running", 409)
        with tempfile.NamedTemporaryFile(dir=s.store.tmp) as f:
            digest = _receive(Path(f.name), length)
            if digest is None:
                return _text("the body ended before its Content-Length", 400)
            if not queueproto.signature_ok(s.queue_secret, job_id, running[1], spec_text, digest, signature):
                return _text("bad signature", 403)
            return _accept(spec, Path(f.name))
    except QueueUnreachable:  # its detail names Redis's host and port: not for an unauthenticated client
        return _text("the build queue is unreachable", 503)


def _receive(path: Path, length: int) -> str | None:
    """Write the body to path; its sha256 (hex), None if it was short."""
    h = hashlib.sha256()
    got = 0
    with open(path, "wb") as f:
        while got < length and (chunk := request.stream.read(min(1 << 20, length - got))):
            h.update(chunk)
            f.write(chunk)
            got += len(chunk)
    return h.hexdigest() if got == length else None


def _accept(spec: BuildSpec, binary: Path) -> Response:
    """Store the binary as the candidate of the job's spec, hashed here (QueueUnreachable: the caller answers 503)."""
    s = services()
    assert s.queue is not None
    try:
        result = s.builder.accept_upload(spec, binary, s.queue.log_of(spec))
    except Unreproducible as e:
        s.queue.alarm(spec, e.first, e.second)
        return _text(str(e), 409)
    s.queue.note(spec, f"the coordinator received {result.size} bytes, sum {result.sum}\n")
    return jsonify(sum=result.sum, size=result.size)
