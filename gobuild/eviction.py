"""The binary cache: evicts binaries past a size cap (least recently used) or an age, rebuilds on request.

Only the binary and its gzip are removed; the result, its log and its log record stay. A request
for an evicted binary compiles the spec again, and the bytes are served only when they reproduce
the logged sum: a mismatch is counted, kept for the admin page and answered with an error.
When a binary was last used is its gzip blob's atime, set explicitly on each download (noatime
mounts only stop the implicit updates), so the order survives restarts; the mtime stays as it was
written, so the immutable answers keep one Last-Modified.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from typing import BinaryIO, cast

from .builds import Builder
from .failures import BuildError
from .metrics import Metrics
from .spec import BuildSpec
from .store import Result, Store, now_text

log = logging.getLogger(__name__)

LOW_WATER = 0.9  # evict down to this share of the cap, so that not every new build evicts again
MAX_MISMATCHES = 100  # kept for the admin page


class RebuildMismatch(BuildError):
    """An evicted binary rebuilt to other bytes than the log says: never served."""

    status = 500
    code = "recompile-mismatch"


@dataclass(frozen=True)
class Mismatch:
    """A rebuild that did not reproduce its logged sum."""

    spec: str
    logged: str
    rebuilt: str
    when: str


@dataclass
class _Entry:
    size: int  # binary + gzip bytes
    used: float  # time.time() of the last download (or the build)


class BinaryCache:
    """Which binaries are on disk, how big, and when each was last downloaded."""

    def __init__(self, store: Store, builder: Builder, metrics: Metrics, max_bytes: int, max_age: float,
                 max_rebuilds: int = 1) -> None:
        self.store = store
        self.builder = builder
        self.metrics = metrics
        self.max_bytes = max_bytes  # 0: no cap
        self.max_age = max_age  # seconds; 0: none
        self.mismatches: list[Mismatch] = []
        self._entries: dict[str, _Entry] = {}
        self._total = 0
        self._lock = threading.Lock()
        self._rebuilding: dict[str, threading.Lock] = {}
        self._slots = threading.BoundedSemaphore(max_rebuilds)  # rebuilds compiling at once
        # Reading every result takes a while on a big instance: do not hold up the start for it.
        threading.Thread(target=self._scan, name="cache-scan", daemon=True).start()

    def _scan(self) -> None:
        for result in self.store.results():
            self._add(result)
        self._evict_if_over()

    @property
    def total(self) -> int:
        """Bytes of binaries and their gzips on disk."""
        with self._lock:
            return self._total

    def _add(self, result: Result) -> None:
        try:
            gz = self.store.blob_path(result.binary_gz).stat()
            size = self.store.blob_path(result.binary).stat().st_size + gz.st_size
        except FileNotFoundError:
            return  # evicted
        with self._lock:
            old = self._entries.get(result.spec)
            self._total += size - (old.size if old else 0)
            self._entries[result.spec] = _Entry(size, gz.st_atime)

    def published(self, spec: BuildSpec) -> None:
        """A build was published: count its binary, then keep the cache under its cap."""
        if (result := self.store.result(spec)) is not None:
            self._add(result)
            self._evict_if_over()

    def serve(self, spec: BuildSpec, result: Result) -> Result:
        """Before a download: make sure the binary is on disk (rebuilding it if evicted), mark it used."""
        if not self._present(result):
            result = self._rebuild(spec, result)
        self.used(result)
        return result

    def used(self, result: Result) -> None:
        """A download of result's binary (or .gz) starts: mark it the most recently used."""
        now = time.time()
        result = self.store.result(result.spec) or result  # a kept download's: a rebuild may have stored another gz
        with contextlib.suppress(FileNotFoundError):  # evicted this instant: the next request rebuilds
            gz = self.store.blob_path(result.binary_gz)
            os.utime(gz, ns=(time.time_ns(), gz.stat().st_mtime_ns))
        with self._lock:
            if (entry := self._entries.get(result.spec)) is not None:
                entry.used = now
        self._evict_if_over()

    def _present(self, result: Result) -> bool:
        return self.store.blob_path(result.binary).exists() and self.store.blob_path(result.binary_gz).exists()

    def _rebuild(self, spec: BuildSpec, result: Result) -> Result:
        """Compile spec again; accept the bytes only if they have the logged sum and size."""
        with self._lock:
            lock = self._rebuilding.setdefault(result.spec, threading.Lock())
        with lock:
            if self._present(result := self.store.result(spec) or result):
                return result
            log.info("rebuilding evicted binary of %s", spec)
            with self._slots, tempfile.NamedTemporaryFile(dir=self.store.tmp, prefix="rebuild-") as out:
                rebuilt = self.builder.rebuild(spec, cast(BinaryIO, out))
            if (rebuilt.sum, rebuilt.size) != (result.sum, result.size):
                return self._mismatch(spec, result, rebuilt)
            if rebuilt.binary_gz != result.binary_gz:  # another zlib: same binary, other gzip bytes
                result = replace(result, binary_gz=rebuilt.binary_gz, size_gz=rebuilt.size_gz)
                self.store.put_result(result)
            self._add(result)
            return result

    def _mismatch(self, spec: BuildSpec, result: Result, rebuilt: Result) -> Result:
        for blob in {rebuilt.binary, rebuilt.binary_gz} - {result.binary, result.binary_gz}:
            self.store.delete_blob(blob)  # no URL points at them, but leave nothing that could be taken
        self.metrics.recompile_mismatches.labels(spec.goos, spec.goarch, spec.goversion).inc()
        when = now_text()
        with self._lock:
            self.mismatches = [Mismatch(result.spec, result.sum, rebuilt.sum, when), *self.mismatches][:MAX_MISMATCHES]
        log.error("recompile mismatch: %s logged %s, rebuilt %s", spec, result.sum, rebuilt.sum)
        raise RebuildMismatch(f"this binary was removed from the cache and rebuilt, but the rebuild has sum "
                              f"{rebuilt.sum}, not the logged {result.sum}: it is not served (the operator is told)")

    def _evict_if_over(self) -> None:
        """Evict only when over the cap: a download must not sort the whole cache."""
        if self.max_bytes and self.total > self.max_bytes:
            self.evict()

    def evict(self) -> None:
        """Remove least recently used binaries while over the cap (down to LOW_WATER of it), and old ones."""
        now = time.time()
        with self._lock:
            order = sorted(self._entries.items(), key=lambda item: item[1].used)
            total = self._total
            target = self.max_bytes * LOW_WATER if self.max_bytes and total > self.max_bytes else None
            victims = []
            for spec, entry in order:
                too_old = self.max_age and now - entry.used > self.max_age
                if not (too_old or (target is not None and total > target)):
                    continue
                victims.append(spec)
                total -= entry.size
                del self._entries[spec]
            self._total = total
        for spec in victims:
            self._remove(spec)

    def _remove(self, spec: str) -> None:
        result = self.store.result(spec)
        if result is None:
            return
        for blob in (result.binary, result.binary_gz):
            self.store.delete_blob(blob)
        self.metrics.evictions.inc()
        log.info("evicted binary of %s", spec)

    def expire_forever(self, interval: float) -> None:
        """Evict binaries past their age every interval seconds (a daemon thread's loop)."""
        while True:
            time.sleep(interval)
            try:
                self.evict()
            except Exception:  # keep the loop alive: the next round tries again
                log.exception("evicting binaries")
