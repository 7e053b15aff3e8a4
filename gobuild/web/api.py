"""JSON twins of the pages machines read, by content negotiation (Accept: application/json) on the same URLs.

The home page (recent builds, Go versions, targets), a module's commands, a build's status and a
result. Other URLs (binaries, logs, records, proofs) are files and answer as before. Errors come
as {"error": {...}} from the one error handler (see negotiate.py).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, redirect, request
from werkzeug.wrappers import Response as BaseResponse

from .. import urls
from ..errors import HTTPProblem
from ..failures import PermanentFailure
from ..phases import NO_PROGRESS, Progress
from ..spec import BuildSpec
from ..states import BuildState
from ..store import Result
from ..urls import Page
from . import live, negotiate, views
from .current import services

bp = Blueprint("api", __name__)

PAGE_ENDPOINTS = ("gobuild.home", "gobuild.dispatch")  # the views whose pages have a JSON twin
MAX_RECENT = 100



@bp.before_app_request
def json_twin() -> Response | BaseResponse | None:
    """Answer a GET of a page in JSON when the client asked for it; None lets the HTML view answer."""
    if request.method not in ("GET", "HEAD") or request.endpoint not in PAGE_ENDPOINTS or not negotiate.wants_json():
        return None
    if request.endpoint == "gobuild.home":
        return home()
    target = urls.parse(request.path[1:], services().targets)
    if isinstance(target, urls.ModuleURL):
        return commands(target.module, "latest")
    if isinstance(target, urls.ShortURL):
        return commands(target.module, target.version)
    if target.page != Page.MAIN:
        return None  # files, logs, events: not pages
    if target.sum is None:
        return build_status(target.spec)
    return result(target.spec, target.sum)


@bp.after_app_request
def vary_on_accept(resp: Response) -> Response:
    """Caches must keep the HTML and the JSON of a page apart."""
    if request.endpoint in PAGE_ENDPOINTS:
        resp.vary.add("Accept")
    return resp


def _json(doc: dict[str, Any], status: int = 200, cache: str = "no-store") -> Response:
    resp = jsonify(doc)
    resp.status_code = status
    resp.headers["Cache-Control"] = cache
    return resp


def home() -> Response:
    """Recent builds, Go versions and targets of this instance."""
    s = services()
    count = request.args.get("count", "10")
    if not (count.isascii() and count.isdigit()) or not 1 <= int(count) <= MAX_RECENT:
        raise HTTPProblem(400, f"count must be 1 to {MAX_RECENT}")
    return _json({
        "recent": [_spec_doc(spec) | {"sum": sum_, "result_url": urls.result_url(spec, sum_)}
                   for spec, sum_ in s.recent_builds(int(count))],
        "goversions": _goversions(),
        "targets": [f"{goos}/{goarch}" for goos, goarch in s.targets.by_popularity()],
        "verifier_key": s.tlog.verifier_key,
        "tlog_url": urls.tlog_url(),
        "building": s.config.build,
    })


def _goversions() -> dict[str, Any]:
    """Which Go versions this instance builds with ("latest" is what the word resolves to)."""
    toolchains = services().toolchains
    try:
        latest: str | None = toolchains.latest()
    except Exception:  # no toolchain at all: the lists say so
        latest = None
    return {"latest": latest, "supported": toolchains.supported(), "installed": toolchains.installed(),
            "available": toolchains.available()}


def commands(module: str, version: str) -> Response | BaseResponse:
    """The commands (main packages) of module@version, with build and install URLs."""
    s = services()
    resolved = views.resolve_module(module, version)
    if isinstance(resolved, BaseResponse):
        return resolved  # a package path: its build status
    goos, goarch = s.targets.guess(request.headers.get("User-Agent", ""))
    goversion = s.toolchains.latest()
    dirs = s.builder.main_packages(module, resolved)
    if not dirs:  # as the HTML page answers
        raise HTTPProblem(422, f"no main packages in module {module}@{resolved}")
    out = []
    for d in dirs:
        spec = BuildSpec(module, resolved, d, goos, goarch, goversion)
        out.append({"dir": d, "package": spec.package, "name": spec.exec_name, "build_url": urls.build_url(spec),
                    "install_url": urls.install_url(module, resolved, d)})
    return _json({"module": module, "version": resolved, "commands": out})


def build_status(spec: BuildSpec) -> Response | BaseResponse:
    """Where a build is: pending, queued (with position), running, verifying, success or failed."""
    s = services()
    if (done := s.store.result(spec)) is not None:
        return _json(_spec_doc(spec) | {"state": BuildState.SUCCESS, "result": _result_doc(spec, done)})
    if (failure := s.store.failure(spec)) is not None:
        error = {"status": PermanentFailure.status, "code": PermanentFailure.code, "message": failure.error,
                 "reason": failure.reason}
        return _json(_spec_doc(spec) | {"state": BuildState.FAILED, "error": error,
                                        "log_url": urls.build_url(spec, Page.LOG),
                                        "retry_url": urls.build_url(spec, Page.RETRY)}, PermanentFailure.status)
    canonical = spec.with_(goversion=s.toolchains.resolve(spec.goversion),
                           version=s.proxy.resolve(spec.module, spec.version))
    if canonical != spec:
        return redirect(urls.build_url(canonical), 307)
    job = s.coordinator.last(spec)
    position = s.coordinator.queue_position(job) if job is not None else 0
    status = live.page_status(job, position, live.progress_of(job) if position == 0 else NO_PROGRESS)
    doc = _spec_doc(spec) | {"state": status.state, "start_url": urls.build_url(spec, Page.START)}
    if status.state == BuildState.FAILED and job is not None and job.error is not None:  # not stored: no log
        doc["error"] = {"status": job.error.status, "code": job.error.code, "message": str(job.error)}
        return _json(doc, job.error.status)
    if status.state == BuildState.QUEUED:
        doc["queue_position"] = status.position
    if status.progress.phase is not None:
        doc["phase"] = _phase_doc(status.progress)
    if status.error:
        doc["error"] = status.error
    if status.href:
        doc["result_url"] = status.href
    return _json(doc)


def _phase_doc(progress: Progress) -> dict[str, Any]:
    """Where a running build is, as its log says: the phase, packages compiled (of how many), since when."""
    def unix(t: float | None) -> int | None:
        return round(t) if t is not None else None

    return {"name": str(progress.phase), "compiled": progress.compiled, "total": progress.total,
            "since": unix(progress.since), "started": unix(progress.started)}


def result(spec: BuildSpec, sum_: str) -> Response | BaseResponse:
    """A finished build: sum, size, record number and the URLs of its files."""
    done = services().store.result(spec)
    if done is None:
        return redirect(urls.build_url(spec), 307)
    if done.sum != sum_:
        raise HTTPProblem(404, f"this spec was built with sum {done.sum}, not {sum_}")
    return _json(_result_doc(spec, done), cache="public, max-age=31536000, immutable")


def _spec_doc(spec: BuildSpec) -> dict[str, Any]:
    return {"spec": str(spec), "module": spec.module, "version": spec.version, "dir": spec.dir,
            "package": spec.package, "goos": spec.goos, "goarch": spec.goarch, "goversion": spec.goversion,
            "stripped": spec.stripped, "build_url": urls.build_url(spec)}


def _result_doc(spec: BuildSpec, done: Result) -> dict[str, Any]:
    files = {"binary": Page.FILE, "gz": Page.FILE_GZ, "log": Page.LOG, "record": Page.RECORD, "proof": Page.PROOF,
             "buildinfo": Page.BUILDINFO, "sbom": Page.SBOM}
    return _spec_doc(spec) | {
        "sum": done.sum, "size": done.size, "size_gz": done.size_gz, "record_number": done.record_number,
        "created": done.created, "sha256": done.binary, "result_url": urls.result_url(spec, done.sum),
        "files": {name: urls.result_url(spec, done.sum, page) for name, page in files.items()},
    }
