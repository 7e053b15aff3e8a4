"""Files derived from a build under its result URL: the offline proof, the build info and the CycloneDX SBOM."""

from __future__ import annotations

import logging

from flask import Response

from .. import buildinfo, proof, sbom
from ..errors import HTTPProblem
from ..spec import BuildSpec
from ..store import Result
from ..urls import Page
from .current import services
from .files import IMMUTABLE

PAGES = (Page.PROOF, Page.BUILDINFO, Page.SBOM)

log = logging.getLogger(__name__)


def serve(spec: BuildSpec, result: Result, page: Page) -> Response:
    """The file named page (one of PAGES) of a finished build."""
    if page == Page.PROOF:
        return _proof(spec, result)
    info = build_info(spec, result)
    if page == Page.BUILDINFO:
        return _immutable(info.text, "text/plain")
    return _immutable(sbom.make(spec, result, info), "application/vnd.cyclonedx+json")


def _immutable(body: str | bytes, mimetype: str) -> Response:
    resp = Response(body, mimetype=mimetype)
    resp.headers["Cache-Control"] = IMMUTABLE
    return resp


def _proof(spec: BuildSpec, result: Result) -> Response:
    """The proof file: immutable, as it proves against the smallest tree holding the record."""
    if result.record_number is None:
        raise HTTPProblem(404, "this build is not in the transparency log, so it has no proof")
    resp = _immutable(proof.make(services().tlog, result.record_number).pack(), "text/plain")
    resp.headers["Content-Disposition"] = f'attachment; filename="{spec.download_filename()}.proof"'
    return resp


def build_info(spec: BuildSpec, result: Result) -> buildinfo.BuildInfo:
    """The build info embedded in the binary (503 if it cannot be read now)."""
    s = services()
    try:
        return buildinfo.read(s.store, s.toolchains, s.builder.paths, result, spec.goversion)
    except buildinfo.BuildInfoError as e:
        log.warning("build info of %s: %s", spec, e)
        raise HTTPProblem(503, f"cannot read the build info now: {e}") from None


def build_info_or_none(spec: BuildSpec, result: Result) -> buildinfo.BuildInfo | None:
    """The build info for the result page, which shows without it when it cannot be read."""
    try:
        return build_info(spec, result)
    except HTTPProblem:
        return None
