"""The transparency log over HTTP: /tlog/latest, /tlog/lookup/<spec>, /tlog/tile/... (REFERENCE 7.5)."""

from __future__ import annotations

from flask import Blueprint, Response, request

from ..errors import BareProblem, GobuildError
from ..module import is_canonical_version
from ..spec import BuildSpec
from ..tlog.server import LogError
from ..urls import TLOG, check_spec_paths
from ..verify import CHAIN_HEADER
from .current import services
from .errors import TLOG_TEXT as TEXT
from .files import IMMUTABLE
from .views import wait_for_build

bp = Blueprint("tlog", __name__, url_prefix=TLOG)

PEER_WAIT = 5.0  # seconds a lookup without the chain header waits for a build that waits on its verifiers
WAITING_ON_VERIFIERS = ("this build is waiting for its verifiers; a verifier that does not send the "
                        f"{CHAIN_HEADER} header cannot get its record before they agree, try again later")
MAX_TILE_HEIGHT = 8  # what every client uses; taller tiles would let one request read a huge range


def _text(body: bytes | str, status: int = 200, cache: str = "no-cache") -> Response:
    resp = Response(body, status, content_type=TEXT)
    resp.headers["Cache-Control"] = cache
    return resp


@bp.get("/latest")
def latest() -> Response:
    """The signed tree head."""
    return _text(services().tlog.signed_tree_head())


@bp.get("/lookup/<path:key>")
def lookup(key: str) -> Response:
    """The record of a spec with the signed tree head, building it first if needed."""
    s = services()
    try:
        parsed = BuildSpec.parse(key, s.targets)
        check_spec_paths(parsed)  # before any proxy or go command sees it
        spec = _canonical(parsed)
        chain = tuple(n for n in request.headers.get(CHAIN_HEADER, "").split(",") if n)
        number = wait_for_build(spec, chain, give_up_verifying=_peer_wait(spec, chain)).record_number
        assert number is not None  # every build is logged (Builder._recorded)
    except GobuildError as e:
        # Like the original: a spec that cannot be built has no record (404), the rest is ours.
        raise BareProblem.of(e, 404 if e.status < 500 else e.status, f"{key}: {e}") from None
    return _text(s.tlog.lookup_response(number))


def _peer_wait(spec: BuildSpec, chain: tuple[str, ...]) -> tuple[float, str] | None:
    """How long a lookup may wait on a build of ours that waits on its verifiers, if it joins one.

    A lookup without the chain header may come from a verifier that does not send it (the original
    gobuild), asking back about the build that waits for it: answering only after our verifiers
    agree would make both wait verify_timeout. Nothing may be logged before they agree, so such a
    lookup gets a 503 after a short wait instead (README: "Instances that verify each other")."""
    s = services()
    if chain or s.verifier is None or s.coordinator.get(spec) is None:
        return None
    return PEER_WAIT, WAITING_ON_VERIFIERS


def _canonical(spec: BuildSpec) -> BuildSpec:
    """Resolve "latest" and non-canonical versions; a canonical version needs no proxy call."""
    s = services()
    spec = spec.with_(goversion=s.toolchains.resolve(spec.goversion))
    if not is_canonical_version(spec.version):
        spec = spec.with_(version=s.proxy.resolve(spec.module, spec.version))
    return spec


@bp.get("/tile/<path:path>")
def tile(path: str) -> Response:
    """A hash or data tile; full tiles never change."""
    height = path.split("/", 1)[0]
    if not (height.isascii() and height.isdigit()) or not 1 <= int(height) <= MAX_TILE_HEIGHT:
        raise BareProblem(400, f"invalid tile syntax: height must be 1 to {MAX_TILE_HEIGHT}")
    try:
        data, full = services().tlog.tile(path)
    except LogError as e:
        raise BareProblem.of(e, e.status, str(e)) from None
    is_data = path.split("/")[1:2] == ["data"]
    resp = Response(data, content_type=TEXT if is_data else "application/octet-stream")
    resp.headers["Cache-Control"] = IMMUTABLE if full else "no-cache"
    return resp
