"""Count every HTTP request of the public app by route class and status (the metrics' http_requests)."""

from __future__ import annotations

from flask import Blueprint, Response, request

from .. import urls
from . import fastpath
from .current import services

bp = Blueprint("instrument", __name__)

_ENDPOINT_CLASSES = {"gobuild.home": "home", "static": "static", "gobuild.robots": "static",
                     "gobuild.legacy_prefix": "redirect"}


def route_class(endpoint: str | None, path: str) -> str:
    """A bounded label for a request: home, static, tlog, module, build, result, redirect, other or none."""
    if endpoint is None:
        return "none"
    if endpoint in _ENDPOINT_CLASSES or endpoint.startswith("site."):
        return _ENDPOINT_CLASSES.get(endpoint, "static")
    if endpoint.startswith("tlog."):
        return "tlog"
    if endpoint != "gobuild.dispatch":
        return "other"
    try:
        target = urls.parse(path.lstrip("/"), services().targets)
    except urls.BadPath:
        return "bad"
    if isinstance(target, urls.SpecURL):
        return "build" if target.sum is None else "result"
    return "module"


@bp.after_app_request
def count(resp: Response) -> Response:
    """Count the request once its status is known (errors included: they pass through here too)."""
    counter = services().metrics.http_requests.labels(route_class(request.endpoint, request.path),
                                                      str(resp.status_code))
    counter.inc()
    fastpath.on_hit(request.environ, counter.inc)  # a kept answer of this request counts too
    return resp
