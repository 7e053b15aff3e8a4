"""Atom feeds of recent builds (the instance's, a module's) and an SVG badge with a command's newest built version.

Both read the transparency log backwards, 256 records per data tile, at most SCAN_RECORDS deep:
the log is the one list of everything built, and its tail is what is recent.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from datetime import UTC, datetime

from flask import Blueprint, Response, current_app, render_template, request

from .. import module as modmod
from .. import urls
from ..spec import Record, SpecError
from ..tlog import merkle
from ..tlog.server import TransparencyLog
from ..urls import BADGE, FEED
from .current import services

bp = Blueprint("feeds", __name__)

SCAN_RECORDS = 20000  # how far back feeds and badges look
FEED_ENTRIES = 30
_TILE_HEIGHT = 8
BADGE_TTL = 60.0  # a badge is on every result page: scan the log at most once a minute per command
BADGE_CACHE_SIZE = 4096



def log_tail(tlog: TransparencyLog, limit: int = SCAN_RECORDS,
             module: str | None = None) -> Iterator[tuple[int, Record]]:
    """(record number, record) from the newest on, at most limit of them looked at; only module's if given."""
    # A record starts with its module path and a space: skip the others before parsing them.
    prefix = (module + " ").encode() if module is not None else b""
    size = tlog.size()
    stop = max(size - limit, 0)
    for n in range((size - 1) >> _TILE_HEIGHT, (stop >> _TILE_HEIGHT) - 1, -1):
        width = min(size - (n << _TILE_HEIGHT), 1 << _TILE_HEIGHT)
        data, _ = tlog.tile(merkle.Tile(_TILE_HEIGHT, -1, n, width).path().removeprefix("tile/"))
        for number, text in reversed(_tile_records(data)):
            if number < stop:
                return
            if not text.startswith(prefix):
                continue
            try:
                yield number, Record.parse(text)
            except SpecError:
                continue  # a record of another format version: not ours to show


def _tile_records(data: bytes) -> list[tuple[int, bytes]]:
    """The records of a data tile of our own log: "<n>\n<text>\n" each, every text one line."""
    out = []
    for entry in data.split(b"\n\n")[:-1]:
        number, _, text = entry.partition(b"\n")
        out.append((int(number), text + b"\n"))
    return out


@bp.get(f"/{FEED}")
def instance_feed() -> Response:
    """The newest builds of this instance."""
    return _feed("gobuild: recent builds", request.host_url, (r for _, r in log_tail(services().tlog)))


@bp.get(f"/<path:module>/{FEED}")
def module_feed(module: str) -> Response:
    """The newest builds of one module (any command, target and Go version)."""
    urls.check_feed_module(module)
    records = (r for _, r in log_tail(services().tlog, module=module))
    return _feed(f"gobuild: builds of {module}", request.host_url.rstrip("/") + urls.module_url(module), records)


def _feed(title: str, link: str, records: Iterator[Record]) -> Response:
    store = services().store
    base = request.host_url.rstrip("/")
    import feedgenerator  # a few MiB, imported by the first feed request

    feed = feedgenerator.Atom1Feed(title=title, link=link, description=title, feed_url=request.base_url)
    for record in records:
        spec = record.spec
        result = store.result(spec)
        if result is None or result.sum != record.sum:
            continue  # logged by a crashed process but not published: nothing to link to
        url = base + urls.result_url(spec, record.sum)
        when = datetime.strptime(result.created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        feed.add_item(title=f"{spec.package}@{spec.version} {spec.goos}/{spec.goarch} {spec.goversion}"
                            + (" stripped" if spec.stripped else ""),
                      link=url, unique_id=url, pubdate=when, updateddate=when,
                      description=f"sum {record.sum}, {record.size} bytes, record {result.record_number}")
        if len(feed.items) >= FEED_ENTRIES:
            break
    resp = Response(feed.writeString("utf-8"), mimetype="application/atom+xml")
    resp.headers["Cache-Control"] = "public, max-age=60"
    return resp


@bp.get(f"/<path:prefix>/{BADGE}")
def badge(prefix: str) -> Response:
    """/<module>@latest/[<dir>/]badge.svg: the newest version of that command built here."""
    module, pkgdir = urls.parse_badge(prefix)
    newest = _newest_built(module, pkgdir)
    label, value = "gobuild", newest or "not built"
    resp = Response(render_template(BADGE, label=label, value=value, built=newest is not None,
                                    label_width=_text_width(label), value_width=_text_width(value)),
                    mimetype="image/svg+xml")
    resp.headers["Cache-Control"] = "public, max-age=300"
    return resp


class _Newest:
    """Per app: the newest built version per command, remembered for BADGE_TTL seconds."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: OrderedDict[tuple[str, str], tuple[float, str | None]] = OrderedDict()


def _newest_built(module: str, pkgdir: str) -> str | None:
    """The highest version of the command in the log's tail."""
    cache: _Newest = current_app.extensions.setdefault("gobuild-badges", _Newest())
    key = (module, pkgdir)
    with cache.lock:
        hit = cache.entries.get(key)
    if hit is not None and time.monotonic() - hit[0] < BADGE_TTL:
        return hit[1]
    versions = {r.spec.version for _, r in log_tail(services().tlog, module=module) if r.spec.dir == pkgdir}
    built = modmod.sort_versions(versions)
    newest = built[-1] if built else None
    with cache.lock:
        cache.entries[key] = (time.monotonic(), newest)
        while len(cache.entries) > BADGE_CACHE_SIZE:
            cache.entries.popitem(last=False)
    return newest


def _text_width(text: str) -> int:
    """Roughly how wide text is at 11px Verdana (what badges use), plus padding."""
    return 10 + sum(7 if c.isupper() or c in "mwMW" else 6 for c in text)
