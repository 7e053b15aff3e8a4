"""The admin app, served only on admin_listen: metrics, queued and running builds, failures, the cache.

It has no authentication, like the original's: keep admin_listen on a private address.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from flask import Flask, Response, redirect, render_template, request
from werkzeug.wrappers import Response as BaseResponse

from ..builds import Job
from ..config import ConfigError
from ..failures import QueueUnreachable
from ..metrics import CONTENT_TYPE
from . import current
from .current import services

if TYPE_CHECKING:
    from ..queue import WorkerView
    from ..services import Services

SHOWN_FAILURES = 100


def create_admin_app(services_: Services, reload: Callable[[], None] | None = None) -> Flask:
    """The admin app over the public app's services; reload re-reads the config file (SIGHUP does too)."""
    app = Flask("gobuild")  # the package's templates
    current.install(app, services_)

    @app.get("/")
    def index() -> str:
        return _index(request.args.get("message", ""))

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(services().metrics.exposition(), content_type=CONTENT_TYPE)

    @app.get("/pending")
    def pending() -> Response:
        lines = ["# buildspec, state, seconds since queued, initiator"]
        lines += [f"{job.spec}\t{job.state}\t{_since(job)}\t{job.initiator}" for job in services().coordinator.jobs()]
        return _text("\n".join(lines) + "\n")

    @app.get("/buildfailures")
    def buildfailures() -> Response:
        lines = ["# buildspec: reason (created)"]
        lines += [f'{f.spec}: "{f.reason}" ({f.created})' for f in services().store.failures()]
        return _text("\n".join(lines) + "\n")

    @app.post("/clear")
    def clear() -> BaseResponse:
        spec = request.form.get("spec", "")
        if not services().store.delete_failure(spec):
            return _text(f"no stored failure for {spec!r}\n", 404)
        return redirect("/?message=cleared+1+failure", 303)

    @app.post("/clearall")
    def clearall() -> BaseResponse:
        count = sum(services().store.delete_failure(f.spec) for f in services().store.failures())
        return redirect(f"/?message=cleared+{count}+failures", 303)

    @app.post("/reload")
    def reload_() -> BaseResponse:
        if reload is None:
            return _text("no config file to reload from\n", 409)
        try:
            reload()
        except ConfigError as e:
            return _text(f"{e}\n", 422)
        return redirect("/?message=reloaded", 303)

    return app


def _queue_state() -> tuple[list[WorkerView], list[dict[str, str]], str]:
    """The queue's workers and reproducibility alarms, and why they are unknown ("" when known)."""
    queue = services().queue
    if queue is None:
        return [], [], ""
    try:
        return queue.workers(), queue.alarms(), ""
    except QueueUnreachable as e:
        return [], [], f"the build queue is unreachable: {e.detail}"


def _index(message: str) -> str:
    s = services()
    failures = s.store.failures()
    workers, alarms, queue_error = _queue_state()
    return render_template(
        "admin.html", message=message, jobs=s.coordinator.jobs(), since=_since, queue=s.config.queue,
        workers=workers, alarms=alarms, queue_error=queue_error,
        failures=failures[:SHOWN_FAILURES], more=len(failures) > SHOWN_FAILURES, total_failures=len(failures),
        cache_mb=f"{s.cache.total / (1 << 20):.1f}", cap_mb=s.config.binary_cache_max_mb,
        max_age=s.config.binary_cache_max_age_hours, mismatches=s.cache.mismatches)


def _since(job: Job) -> str:
    return f"{time.monotonic() - job.created:.0f}s"


def _text(body: str, status: int = 200) -> Response:
    return Response(body, status, content_type="text/plain; charset=utf-8")
