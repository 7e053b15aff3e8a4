"""Files derived from a build under its result URL: the offline proof (and, later, the bill of materials)."""

from __future__ import annotations

from flask import Response, current_app

from .. import proof
from ..spec import BuildSpec
from ..store import Result
from .errors import HTTPProblem
from .files import IMMUTABLE

PAGES = ("proof",)


def serve(spec: BuildSpec, result: Result, page: str) -> Response:
    """The file named page (one of PAGES) of a finished build."""
    return _proof(spec, result)


def _proof(spec: BuildSpec, result: Result) -> Response:
    """The proof file: immutable, as it proves against the smallest tree holding the record."""
    if result.record_number is None:
        raise HTTPProblem(404, "this build is not in the transparency log, so it has no proof")
    body = proof.make(current_app.extensions["gobuild"].tlog, result.record_number).pack()
    resp = Response(body, mimetype="text/plain")
    resp.headers["Content-Disposition"] = f'attachment; filename="{spec.download_filename()}.proof"'
    resp.headers["Cache-Control"] = IMMUTABLE
    return resp
