"""Who may make this server work: the module allowlist, bad clients and build rate limits."""

from __future__ import annotations

from flask import Blueprint, request

from ..builds import Job
from ..clients import client_address, module_allowed
from ..errors import HTTPProblem
from ..spec import BuildSpec, GoVersion, SpecError
from ..toolchains import UnknownGoVersion
from ..urls import TLOG
from .current import services

bp = Blueprint("admission", __name__)

# The endpoints whose path names a module and that can start work (resolve, download, build).
_MODULE_ENDPOINTS = {"gobuild.dispatch": "/", "tlog.lookup": TLOG + "/lookup/"}

BAD_CLIENT = ("Your request matched a list of clients/networks with known bad behaviour. Please respect the "
              "robots.txt (no crawling that triggers builds!) and be kind. Contact the admins to get access again.")
LIMITED = ("Your IP or its neighbourhood has requested too many builds (for {} Go versions) in a short period. "
           "Please slow down, and try again later. Contact the admins to get the rate limit loosened.")


@bp.before_app_request
def allowed_modules() -> None:
    """On an instance limited to module_prefixes, refuse every other module before any work."""
    prefixes = services().config.module_prefixes
    strip = _MODULE_ENDPOINTS.get(request.endpoint or "")
    if not prefixes or strip is None:
        return
    module = request.path.removeprefix(strip).partition("@")[0].rstrip("/")
    if not module_allowed(prefixes, module):
        services().metrics.refused.labels("module").inc()
        raise HTTPProblem(403, f"this instance builds only modules under {', '.join(prefixes)}, not {module}")


def client() -> str:
    """The client's address as text ("" if unknown), through trusted reverse proxies."""
    address = client_address(request.remote_addr or "", request.headers.getlist("X-Forwarded-For"),
                             services().trusted_proxies)
    return str(address) if address is not None else ""


def admit(spec: BuildSpec) -> None:
    """Before a request starts a build of spec: refuse bad clients (403) and clients over a limit (429).

    Joining a build that already runs costs nothing and is never refused."""
    s = services()
    if s.coordinator.get(spec) is not None:
        return
    address = client_address(request.remote_addr or "", request.headers.getlist("X-Forwarded-For"),
                             s.trusted_proxies)
    user_agent = request.headers.get("User-Agent", "")
    if any(bad.matches(address, user_agent) for bad in s.bad_clients):
        s.metrics.refused.labels("bad client").inc()
        raise HTTPProblem(403, BAD_CLIENT)
    if address is None:
        return  # a unix socket or a test client: nothing to count against
    recent = _recent(spec.goversion)
    wait = s.limiter.hit(address, recent)
    if wait is not None:
        kind = "recent" if recent else "old"
        s.metrics.rate_limited.labels(kind).inc()
        raise HTTPProblem(429, LIMITED.format(kind), retry_after=int(wait + 0.999))


def start(spec: BuildSpec) -> Job:
    """Start (or join) spec's build for this request: admitted first (403 or 429 otherwise)."""
    admit(spec)
    return services().coordinator.start(spec, initiator=client())


def _recent(goversion: str) -> bool:
    """Whether goversion is one of the two newest Go minors (the supported ones), which get more builds."""
    try:
        latest = GoVersion.parse(services().toolchains.latest())
        return GoVersion.parse(goversion).minor >= latest.minor - 1
    except (SpecError, UnknownGoVersion):
        return True  # no toolchain known yet: do not punish the client for it
