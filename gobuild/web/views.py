"""Thin views: parse the URL, call one domain function, render or redirect."""

from __future__ import annotations

import time
import urllib.parse
from functools import partial

from flask import Blueprint, Response, redirect, render_template, request
from werkzeug.wrappers import Response as BaseResponse

from .. import urls
from ..builds import Job
from ..compiler import reproduce_command
from ..errors import HTTPProblem
from ..failures import Busy, PermanentFailure, TemporaryFailure
from ..goproxy import ModuleNotFound, redacted
from ..module import InvalidPath, check_path, is_valid_path
from ..spec import BuildSpec, Record, SpecError
from ..states import BuildState, JobState
from ..store import Failure, Result
from ..urls import Page
from . import admission, fastpath, files, live, pages, pagestate, resultfiles
from .current import services
from .logview import fold

bp = Blueprint("gobuild", __name__)


def _redirect(location: str, code: int = 307) -> BaseResponse:
    """A redirect to a path of this site only: never //host, /\\host or anything a browser reads as another origin."""
    if not location.startswith("/") or location.startswith(("//", "/\\")) or \
            any(c.isspace() or not c.isprintable() or c == "\\" for c in location):
        raise HTTPProblem(404, "not a path on this site")
    return redirect(location, code=code)


@bp.before_app_request
def clean_paths() -> BaseResponse | None:
    """Answer //, /./ and /../ with a 301 to the cleaned path, like Go's ServeMux."""
    urls.check_text(request.path)
    cleaned = urls.clean_path(request.path)
    if cleaned != request.path:
        return _redirect(cleaned, 301)
    return None


@bp.get("/")
def home() -> str | BaseResponse:
    """The home page; ?m=<module> is the no-JavaScript form submit."""
    m = request.args.get("m", "").strip()
    if m:
        m = m.removeprefix("https://").removeprefix("http://").strip("/")
        urls.check_text(m)  # control characters (a newline, a tab a browser drops): 404, not a header error
        if not m or not (m[0].isalnum()) or "\\" in m or any(c.isspace() for c in m):
            raise urls.BadPath("not a module path: it must start with a letter or digit")
        return _redirect("/" + urllib.parse.quote(m, safe="/@:+~!$&'()*,;="))
    s = services()
    recent = s.recent_builds()
    example = _example_spec(recent[0][0] if recent else None)
    return render_template("home.html", recent=recent, goversion=_latest_or_none(),
                           goproxy=redacted(s.builder.settings.goproxy), verifier_key=s.tlog.verifier_key,
                           example_url=urls.build_url(example, Page.FILE), example_name=example.exec_name,
                           get_example=s.get_command(example, None, request.host),
                           verifiers=list(s.verifier.status.items()) if s.verifier else [],
                           building=s.config.build, notes=pages.instance_notes(),
                           sandbox_warning=s.sandbox_warning)


@bp.get("/robots.txt")
def robots() -> Response:
    """Crawlers must not trigger builds."""
    return Response("User-agent: *\nDisallow: /\n", mimetype="text/plain")


@bp.get("/<any(m, b, r):prefix>/<path:path>")
def legacy_prefix(prefix: str, path: str) -> BaseResponse:
    """The original's old /m/, /b/ and /r/ URL prefixes."""
    return _redirect("/" + path)


@bp.route("/<path:path>", methods=["GET", "POST"])
def dispatch(path: str) -> str | Response | BaseResponse:
    """Every module, build and result URL."""
    target = urls.parse(request.path[1:], services().targets)
    builds = isinstance(target, urls.SpecURL) and target.page in (Page.RETRY, Page.START)
    if request.method == "POST" and not builds:
        raise HTTPProblem(405, "only GET here; POST is for .../retry and .../start")
    if builds and request.method != "POST":  # a link followed (a crawler, a prefetch) must never start a build
        raise HTTPProblem(405, "only POST here: the build page's Start and Retry buttons post to this URL",
                          allow="POST")
    if isinstance(target, urls.ModuleURL):
        return module_page(target.module, request.path.endswith("/"))
    if isinstance(target, urls.ShortURL):
        return short_url(target.module, target.version)
    if target.sum is None:
        return build_url(target.spec, target.page)
    return result_url(target.spec, target.sum, target.page)


def module_page(module: str, trailing_slash: bool) -> str | BaseResponse:
    """List the main packages at the latest version; redirect when there is just one."""
    if trailing_slash:
        return _redirect(urls.module_url(module))
    return short_url(module, "latest")


def short_url(module: str, version: str) -> str | BaseResponse:
    """/<mod>@<version>: resolve the version and go to the build page of its command."""
    resolved = resolve_module(module, version)
    return resolved if isinstance(resolved, BaseResponse) else _package_choice(module, resolved)


def resolve_module(module: str, version: str) -> str | BaseResponse:
    """module's canonical version; for a package path, the redirect to its build page (page and JSON alike)."""
    try:
        return services().proxy.resolve(module, version)
    except ModuleNotFound:
        if (found := _package_in_module(module, version)) is not None:
            return found
        raise


def _package_in_module(path: str, version: str) -> BaseResponse | None:
    """A package path given for a module: the build page of that package in the module that holds it.

    Like `go get`, the module is the longest prefix of the path that the proxy knows; None if none.
    """
    s = services()
    parts = path.split("/")
    for n in range(len(parts) - 1, 0, -1):
        prefix = "/".join(parts[:n])
        if not is_valid_path(prefix):
            continue
        try:
            resolved = s.proxy.resolve(prefix, version)
        except ModuleNotFound:
            continue
        dir_ = "/" + "/".join(parts[n:])
        goos, goarch = s.targets.guess(request.headers.get("User-Agent", ""))
        if dir_ not in s.builder.main_packages(prefix, resolved, goos, goarch):
            raise HTTPProblem(422, f"package {path} of module {prefix}@{resolved} is not a command for {goos}/{goarch}")
        return _redirect(urls.build_url(BuildSpec(prefix, resolved, dir_, goos, goarch, s.toolchains.latest())))
    return None


def _package_choice(module: str, version: str) -> str | BaseResponse:
    s = services()
    goos, goarch = s.targets.guess(request.headers.get("User-Agent", ""))
    pkgs = s.builder.main_packages(module, version, goos, goarch)
    if not pkgs:
        raise HTTPProblem(422, f"no main packages in module {module}@{version} for {goos}/{goarch}")
    goversion = s.toolchains.latest()
    specs = [BuildSpec(module, version, d, goos, goarch, goversion) for d in pkgs]
    if len(specs) == 1:
        return _redirect(urls.build_url(specs[0]))
    return render_template("module.html", module=module, version=version, specs=specs)


# Build URLs (no sum) ----------------------------------------------------------------------


def build_url(spec: BuildSpec, page: Page) -> str | Response | BaseResponse:
    """A spec that may or may not be built yet."""
    s = services()
    if (result := s.store.result(spec)) is not None:
        return _redirect(urls.result_url(spec, result.sum, page))
    if (failure := s.store.failure(spec)) is not None:
        return failed_page(spec, page, failure)
    if page in (Page.EVENTS, Page.LIVE) and s.coordinator.last(spec) is not None:  # a known build: no proxy lookups
        return live.events(spec) if page == Page.EVENTS else live.fragment(spec)
    if (canonical := _canonical(spec)) != spec:
        return _redirect(urls.build_url(canonical, page))
    if page in (Page.LOG, Page.DL):
        raise HTTPProblem(422, "no build yet, trigger it, wait for it to finish and load again")
    if page == Page.MAIN:
        return build_page(spec)
    if page == Page.EVENTS:
        return live.events(spec)
    if page == Page.LIVE:
        return live.fragment(spec)
    if page == Page.START:  # the Start button: opening the page itself never builds (crawlers)
        admission.start(spec)
        return _redirect(urls.build_url(spec), 303)
    admission.admit(spec)
    try:
        result = wait_for_build(spec, initiator=admission.client())
    except PermanentFailure as e:
        raise _naming_page(spec, e) from None
    if page == Page.RETRY:  # POST retry of something never built: it is built now, show it
        return _redirect(urls.result_url(spec, result.sum), 303)
    return _redirect(urls.result_url(spec, result.sum, page))


def failed_page(spec: BuildSpec, page: Page, failure) -> str | Response | BaseResponse:  # type: ignore[no-untyped-def]
    """A spec whose build failed permanently: show it, serve its log, or forget it on retry."""
    s = services()
    if page == Page.RETRY:  # forget the failure and build again: one click
        s.store.delete_failure(spec)
        admission.start(spec)
        return _redirect(urls.build_url(spec), 303)
    if page == Page.LOG:
        return files.text(s.store.read_blob(failure.log), immutable=False)
    if page == Page.MAIN:
        return build_page(spec, failure)
    if page == Page.LIVE:
        return live.redirect_fragment(None)
    if page == Page.START:
        return _redirect(urls.build_url(spec), 303)
    raise _naming_page(spec, PermanentFailure(failure.reason, failure.error))


def _naming_page(spec: BuildSpec, e: PermanentFailure) -> PermanentFailure:
    """The failure, pointing at the build page with its log (plain-text clients get no link otherwise)."""
    return PermanentFailure(e.reason, f"{e}; details and log: {request.host_url.rstrip('/')}{urls.build_url(spec)}")


def build_page(spec: BuildSpec, failure: Failure | None = None) -> Response | BaseResponse:
    """The build page: pending with a Start button, the live log while it builds, or the failure."""
    s = services()
    job = None if failure is not None else s.coordinator.last(spec)
    if failure is not None:
        status = live.Status(BuildState.FAILED, error=failure.error, stored=True)
        log, offset = fold(s.store.read_blob(failure.log).decode("utf-8", "replace")), 0
    else:
        log, offset, progress = live.page_log(job)
        status = live.page_status(job, s.coordinator.queue_position(job) if job is not None else 0, progress)
    if status.state == BuildState.SUCCESS:  # ended between the store lookup and now
        return _redirect(status.href)
    html = render_template("build.html", spec=spec, status=status, log=log, offset=offset, poll=live.polling(),
                           reproduce=reproduce_command(spec, s.builder.settings.goproxy), columns=pages.related(spec),
                           newer=pages.newer(spec), get_command=s.get_command(spec, None, request.host))
    failed = status.state == BuildState.FAILED
    error = job.error if job is not None else None  # a failure never stored: its own status, as the JSON says
    return _no_store(html, (error.status if error is not None else 422) if failed else 200)


def _canonical(spec: BuildSpec) -> BuildSpec:
    """The spec with "latest" Go and a resolved module version (also checks both exist)."""
    s = services()
    goversion = s.toolchains.resolve(spec.goversion)  # latest, go1.N.latest, go1.21 -> go1.21.0; no download
    version = s.proxy.resolve(spec.module, spec.version)
    return spec.with_(goversion=goversion, version=version)


def wait_for_build(spec: BuildSpec, chain: tuple[str, ...] = (), initiator: str = "",
                   give_up_verifying: tuple[float, str] | None = None) -> Result:
    """The logged result of spec, building it if needed and waiting for it.

    Waiting holds a server thread, so only max_waiting requests wait at once; past that the build
    is still started (it costs no thread while queued) and the answer is 503 with Retry-After.
    give_up_verifying (seconds, reason): once the build has waited that long on its verifiers, stop
    waiting with a TemporaryFailure saying reason.
    """
    s = services()
    if (result := s.store.result(spec)) is not None:
        return result
    job = s.coordinator.start(spec, chain, initiator)
    if not s.waits.acquire():
        raise Busy("too many requests are waiting for builds; the build goes on, try again later")
    try:
        with s.metrics.waiting.track_inprogress():
            if give_up_verifying is not None:
                _wait_unless_verifying(job, build_wait_seconds(), *give_up_verifying)
            return job.wait(build_wait_seconds())
    finally:
        s.waits.release()


def _wait_unless_verifying(job: Job, timeout: float, limit: float, reason: str) -> None:
    """Wait until job ends or timeout passes; TemporaryFailure(reason) once it waited limit on its verifiers."""
    deadline = time.monotonic() + timeout
    verifying_since = None
    while not job.done.wait(0.2) and time.monotonic() < deadline:
        if job.state == JobState.VERIFYING:
            verifying_since = verifying_since or time.monotonic()
            if time.monotonic() - verifying_since >= limit:
                raise TemporaryFailure(reason)


def build_wait_seconds() -> float:
    """How long a request waits for a build before answering "try again later"."""
    cfg = services().config
    return float(cfg.build_timeout + cfg.prepare_timeout + 60)


# Result URLs (with sum) ----------------------------------------------------------------


def result_url(spec: BuildSpec, sum_: str, page: Page) -> str | Response | BaseResponse:
    """A finished build: its page, binary, gzipped binary, log or record."""
    s = services()
    result = s.store.result(spec)
    if result is None:
        return _redirect(urls.build_url(spec, page))
    if result.sum != sum_:
        raise HTTPProblem(404, f"this spec was built with sum {result.sum}, not {sum_}")
    record = Record(spec, result.size, result.sum)
    if page == Page.MAIN:
        hint_age = pagestate.keep_result_page(request.environ, spec)  # kept by the fast path while current
        return render_template("result.html", spec=spec, result=result, record=record.pack().decode(),
                               reproduce=reproduce_command(spec, s.builder.settings.goproxy),
                               get_command=s.get_command(spec, result.sum, request.host),
                               columns=pages.related(spec, hint_age), newer=pages.newer(spec, hint_age),
                               pkgsite=pages.pkgsite_link(spec), latest=urls.latest_url(spec),
                               verifier_key=s.tlog.verifier_key, buildinfo=resultfiles.build_info_or_none(spec, result))
    if page == Page.LIVE:
        return live.redirect_fragment(urls.result_url(spec, sum_))
    if page == Page.START:
        return _redirect(urls.result_url(spec, sum_), 303)
    if page == Page.DL:
        return _redirect(urls.result_url(spec, sum_, Page.FILE))
    if page == Page.RETRY:
        raise HTTPProblem(404, "No retry endpoint for results")
    if page == Page.EVENTS:
        return live.result_events(spec, result)
    if page == Page.RECORD:
        return files.text(record.pack(), immutable=True)
    if page == Page.LOG:
        return files.text(s.store.read_blob(result.log), immutable=True)
    if page in resultfiles.PAGES:
        return resultfiles.serve(spec, result, page)
    if page.startswith("legacy-"):
        return _redirect(urls.result_url(spec, sum_, Page(page.removeprefix("legacy-"))), 301)
    result = s.cache.serve(spec, result)  # rebuilt here if it was evicted
    fastpath.on_hit(request.environ, partial(s.cache.used, result))  # a kept answer is a download too
    return files.binary(s.store, result, spec, gz=page.endswith(".gz"))


def _no_store(body: str, status: int = 200) -> Response:
    resp = Response(body, status, mimetype="text/html")
    resp.headers["Cache-Control"] = "no-store"
    return resp


DEFAULT_EXAMPLE = "golang.org/x/example/hello"


def _example_spec(newest: BuildSpec | None) -> BuildSpec:
    """The command the home page's examples use: configured, else the newest build, else a known one.

    Examples must exist on the configured proxy, so a fixed module of our own test proxy will not do.
    """
    configured = services().config.example
    if configured or newest is None:
        module, _, rest = (configured or DEFAULT_EXAMPLE).partition("@")
        version, _, dir_ = rest.partition("/")
        try:
            check_path(module)
            return BuildSpec(module, version or "latest", ("/" + dir_).rstrip("/") or "/", "linux", "amd64", "latest")
        except (InvalidPath, SpecError):
            return BuildSpec(DEFAULT_EXAMPLE, "latest", "/", "linux", "amd64", "latest")
    return newest.with_(version="latest", goversion="latest", stripped=False)


def _latest_or_none() -> str | None:
    try:
        return str(services().toolchains.latest())
    except Exception:
        return None
