"""The Prometheus metrics of one server: every metric object lives here, in the server's own registry.

The services report events through the small methods below (hooks); gauges that mirror state
(queue, running builds, streams, log size) read it when scraped. The admin listener serves
exposition(); nothing here is reachable from the public port.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import requests
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import exposition as _exposition

from .failures import BuildError, PermanentFailure

if TYPE_CHECKING:
    from .builds import RecordLog
    from .spec import BuildSpec

BUILD_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 3600)
SHORT_BUCKETS = (0.005, 0.025, 0.1, 0.25, 1, 2.5, 10, 30, 120)
TOOLCHAIN_MODULE_PATH = "/golang.org/toolchain/@v/"
CONTENT_TYPE = _exposition.CONTENT_TYPE_LATEST

TARGET = ("goos", "goarch", "goversion")


def failure_reason(error: BaseException) -> str:
    """The label of a failed build: the stored reason of a permanent failure, else the error's kind."""
    if isinstance(error, PermanentFailure):
        return error.reason
    if isinstance(error, BuildError):
        return error.code
    return "internal"


class Metrics:
    """The metric objects of one server and the hooks the services call."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.builds_started = Counter("gobuild_builds_started", "Builds started", TARGET, registry=r)
        self.builds_succeeded = Counter("gobuild_builds_succeeded", "Builds that ended logged", TARGET, registry=r)
        self.builds_failed = Counter("gobuild_builds_failed", "Builds that failed, by reason",
                                     ("reason", *TARGET), registry=r)
        self.build_seconds = Histogram("gobuild_build_duration_seconds", "Time from start of a build to its end",
                                       buckets=BUILD_BUCKETS, registry=r)
        self.queue_seconds = Histogram("gobuild_queue_duration_seconds", "Time a build waited for a slot",
                                       buckets=BUILD_BUCKETS, registry=r)
        self.queued = Gauge("gobuild_builds_queued", "Builds waiting for a slot", registry=r)
        self.running = Gauge("gobuild_builds_running", "Builds compiling now", registry=r)
        self.waiting = Gauge("gobuild_requests_waiting", "Requests waiting for a build to end", registry=r)
        self.streams = Gauge("gobuild_live_streams", "Open live build-log streams", registry=r)
        self.proxy_seconds = Histogram("gobuild_goproxy_request_duration_seconds", "Module proxy requests",
                                       ("kind",), buckets=SHORT_BUCKETS, registry=r)
        self.proxy_errors = Counter("gobuild_goproxy_errors", "Module proxy answers 5xx or no answer",
                                    ("kind",), registry=r)
        self.toolchain_downloads = Counter("gobuild_toolchain_downloads", "Go toolchain zips downloaded",
                                           registry=r)
        self.tlog_records = Gauge("gobuild_tlog_records", "Records in the transparency log", registry=r)
        self.tlog_append_seconds = Histogram("gobuild_tlog_append_duration_seconds", "Appending one record",
                                             buckets=SHORT_BUCKETS, registry=r)
        self.tlog_append_errors = Counter("gobuild_tlog_append_errors", "Failed appends to the log", registry=r)
        self.verify_seconds = Histogram("gobuild_verify_duration_seconds", "One verifier's answer",
                                        ("peer",), buckets=BUILD_BUCKETS, registry=r)
        self.verify_errors = Counter("gobuild_verify_errors", "Verifiers that did not answer", ("peer",),
                                     registry=r)
        self.verify_mismatches = Counter("gobuild_verify_mismatches", "Verifiers that built other bytes",
                                         ("peer", *TARGET), registry=r)
        self.recompile_mismatches = Counter("gobuild_recompile_mismatches",
                                            "Rebuilds of evicted binaries that gave another sum", TARGET, registry=r)
        self.reproducibility_alarms = Counter("gobuild_reproducibility_alarms",
                                              "Queue builds of one spec that gave different sums (nothing logged)",
                                              TARGET, registry=r)
        self.evictions = Counter("gobuild_cache_evictions", "Binaries removed from the cache", registry=r)
        self.cache_bytes = Gauge("gobuild_cache_bytes", "Bytes of binaries in the cache", registry=r)
        self.http_requests = Counter("gobuild_http_requests", "HTTP requests by route class and status",
                                     ("route", "status"), registry=r)
        self.rate_limited = Counter("gobuild_rate_limited", "Build requests refused by a rate limit",
                                    ("goversions",), registry=r)
        self.refused = Counter("gobuild_requests_refused", "Requests refused (bad client, module not allowed)",
                               ("why",), registry=r)
        self.panics = Counter("gobuild_panics", "Internal errors (a bug or an I/O failure)", registry=r)

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric."""
        return generate_latest(self.registry)

    def watch(self, gauge: Gauge, read: Callable[[], float]) -> None:
        """Let a gauge read its value when scraped."""
        gauge.set_function(read)

    # Builds -------------------------------------------------------------------------------------

    def build_started(self, spec: BuildSpec, queued_seconds: float) -> None:
        self.builds_started.labels(*_target(spec)).inc()
        self.queue_seconds.observe(queued_seconds)

    def reproducibility_alarm(self, spec: BuildSpec) -> None:
        self.reproducibility_alarms.labels(*_target(spec)).inc()

    def build_ended(self, spec: BuildSpec, seconds: float, error: BaseException | None) -> None:
        self.build_seconds.observe(seconds)
        if error is None:
            self.builds_succeeded.labels(*_target(spec)).inc()
        else:
            self.builds_failed.labels(failure_reason(error), *_target(spec)).inc()
            if failure_reason(error) == "internal":
                self.panics.inc()

    # Module proxy -----------------------------------------------------------------------------

    def proxy_response(self, resp: requests.Response, *args: object, **kwargs: object) -> None:
        """A requests response hook: latency and errors of every module proxy request."""
        kind = _proxy_kind(resp.url)
        self.proxy_seconds.labels(kind).observe(resp.elapsed.total_seconds())
        if resp.status_code >= 500:
            self.proxy_errors.labels(kind).inc()
        if kind == "toolchain" and resp.status_code == 200:
            self.toolchain_downloads.inc()

    # Verifiers -----------------------------------------------------------------------------------

    def verified(self, peer: str, seconds: float, outcome: str, spec: BuildSpec) -> None:
        """One verifier lookup ended: outcome is ok, error or mismatch."""
        if outcome == "mismatch":
            self.verify_mismatches.labels(peer, *_target(spec)).inc()
            return
        self.verify_seconds.labels(peer).observe(seconds)
        if outcome == "error":
            self.verify_errors.labels(peer).inc()


def _target(spec: BuildSpec) -> tuple[str, str, str]:
    return spec.goos, spec.goarch, spec.goversion


def _proxy_kind(url: str) -> str:
    """What a proxy request fetched: list, latest, info, mod, zip or toolchain (a bounded label set)."""
    path = urlsplit(url).path
    if TOOLCHAIN_MODULE_PATH in path and path.endswith(".zip"):
        return "toolchain"
    if path.endswith("/@latest"):
        return "latest"
    for ext in ("list", ".info", ".mod", ".zip"):
        if path.endswith(ext):
            return ext.lstrip(".")
    return "other"


class TimedLog:
    """The transparency log as a build sees it, with append latency and errors measured."""

    def __init__(self, tlog: RecordLog, metrics: Metrics) -> None:
        self._tlog = tlog
        self._metrics = metrics

    def append(self, record: bytes) -> int:
        start = time.monotonic()
        try:
            number = self._tlog.append(record)
        except Exception:
            self._metrics.tlog_append_errors.inc()
            raise
        self._metrics.tlog_append_seconds.observe(time.monotonic() - start)
        return number

    def size(self) -> int:
        return self._tlog.size()

    def find(self, record: bytes, start: int = 0) -> int | None:
        return self._tlog.find(record, start)
