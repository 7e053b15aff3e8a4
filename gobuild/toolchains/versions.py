"""Which Go versions exist: golang.org/toolchain module versions, their order, the supported and allowed
ones, and the proxy's version list kept fresh in the background."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..spec import GoVersion, SpecError
from .errors import UnknownGoVersion

log = logging.getLogger(__name__)

TOOLCHAIN_MODULE = "golang.org/toolchain"
TOOLCHAIN_MODULE_VERSION = "v0.0.1"  # the go command's gotoolchainVersion
REFRESH_INTERVAL = 3600.0  # seconds between refreshes of the proxy's version list
RETRY_BACKOFF = 60.0  # seconds before a failed refresh is tried again
SUPPORTED_MINORS = 2  # the Go project supports the two newest minor releases

_MINOR_LATEST = re.compile(r"go1\.(0|[1-9][0-9]*)\.latest")

def toolchain_module_version(goversion: str, goos: str, goarch: str) -> str:
    """The golang.org/toolchain version holding goversion for goos/goarch."""
    return f"{TOOLCHAIN_MODULE_VERSION}-{goversion}.{goos}-{goarch}"


def goversions_from_list(versions: list[str], goos: str, goarch: str) -> list[str]:
    """The Go versions among golang.org/toolchain module versions for one platform, newest first."""
    head, tail = TOOLCHAIN_MODULE_VERSION + "-", f".{goos}-{goarch}"
    found: set[str] = set()
    for v in versions:
        if v.startswith(head) and v.endswith(tail):
            goversion = v[len(head):-len(tail)]
            if _canonical(goversion) == goversion:
                found.add(goversion)
    return sort_goversions(found)


def sort_goversions(goversions: set[str] | list[str]) -> list[str]:
    """Go versions newest first; a release above its rcs, rcs above betas, rc2 above rc1."""
    return sorted(set(goversions), key=_order, reverse=True)


def _order(goversion: str) -> tuple[int, int, int]:
    """Sort key of a Go version: (major/minor/patch key, release 2 / rc 1 / beta 0, rc or beta number)."""
    v = GoVersion.parse(goversion)
    if v.is_release():
        return v.key, 2, 0
    return v.key, 1 if v.suffix.startswith("rc") else 0, int(v.suffix.lstrip("rcbeta"))


def supported_versions(goversions: list[str]) -> list[str]:
    """The newest patch release of each of the two newest minor versions, newest first."""
    newest: dict[int, str] = {}
    for s in sort_goversions(goversions):
        v = GoVersion.parse(s)
        if v.is_release() and v.minor not in newest:
            newest[v.minor] = s
    return [newest[m] for m in sorted(newest, reverse=True)[:SUPPORTED_MINORS]]


def _canonical(goversion: str) -> str | None:
    """The canonical spelling of a Go version (go1.21 -> go1.21.0), None if invalid."""
    try:
        return str(GoVersion.parse(goversion))
    except SpecError:
        return None


@dataclass(frozen=True)
class VersionPolicy:
    """Config goversion_oldest / goversion_stop: refuse older than oldest, refuse stop and newer."""

    oldest: str = ""
    stop: str = ""

    def allows(self, goversion: str) -> bool:
        """Whether goversion may be used (rc/beta suffixes are ignored, as in the original)."""
        try:
            self.check(goversion)
        except UnknownGoVersion:
            return False
        return True

    def check(self, goversion: str) -> None:
        """Raise UnknownGoVersion unless goversion is allowed."""
        key = GoVersion.parse(goversion).key
        if self.oldest and key < GoVersion.parse(self.oldest).key:
            raise UnknownGoVersion(f"bad goversion {goversion}: older than {self.oldest}, the oldest allowed here")
        if self.stop and key >= GoVersion.parse(self.stop).key:
            raise UnknownGoVersion(f"bad goversion {goversion}: {self.stop} and newer are not allowed here")


class VersionList:
    """A remote list, fetched on first use, refreshed in the background at most every interval.

    A failed refresh keeps the old list and is retried on a use after a short back-off (the
    original waited an hour).
    """

    def __init__(self, fetch: Callable[[], list[str]], interval: float = REFRESH_INTERVAL,
                 backoff: float = RETRY_BACKOFF, clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self.interval = interval
        self.backoff = backoff
        self._clock = clock
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()  # one fetch at a time
        self._value: list[str] | None = None
        self._fetched_at: float | None = None
        self._failed_at: float | None = None
        self._thread: threading.Thread | None = None

    def get(self) -> list[str] | None:
        """The current list (None before the first successful fetch); starts a refresh if one is due."""
        with self._lock:
            first = self._fetched_at is None and self._failed_at is None
            due = self._due()
        if first:
            self.refresh(force=False)  # the first answer should be right, so wait for it once
        elif due:
            self._start_background()
        with self._lock:
            return list(self._value) if self._value is not None else None

    def stamp(self) -> tuple[float | None, float | None] | None:
        """When the list was last fetched and failed (another stamp: maybe another list); None when due."""
        with self._lock:
            return None if self._due() else (self._fetched_at, self._failed_at)

    def refresh(self, force: bool = True) -> bool:
        """Fetch now (unless not due and not forced); return whether the list is fresh."""
        with self._refresh_lock:
            with self._lock:
                if not force and not self._due():
                    return self._failed_at is None  # another caller just refreshed
            try:
                value = self._fetch()
            except Exception as e:
                with self._lock:
                    self._failed_at = self._clock()
                log.warning("refreshing the Go toolchain list failed (keeping the old list, retrying in %gs): %s",
                            self.backoff, e)
                return False
            with self._lock:
                self._value, self._fetched_at, self._failed_at = value, self._clock(), None
            return True

    def join(self, timeout: float | None = None) -> None:
        """Wait for a background refresh to end (for tests and shutdown)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _due(self) -> bool:
        """Whether a refresh should run now; call with _lock held."""
        now = self._clock()
        if self._failed_at is not None:
            return now - self._failed_at >= self.backoff
        return self._fetched_at is None or now - self._fetched_at >= self.interval

    def _start_background(self) -> None:
        """Start a refresh thread unless one runs."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self.refresh, kwargs={"force": False},
                                            name="toolchain-list", daemon=True)
            self._thread.start()
