"""Go SDKs: the locally configured ones and those fetched from the module proxy into data/sdk/,
which versions are supported and "latest", and which targets each version can build for.

Toolchains is the one entry point; its jobs live beside it: versions.py (which versions exist and
are allowed), install.py (download, verify, unpack, smoke test), platform.py (this host, local
SDKs and what their go binary reports), errors.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from .. import gocmd, goproxy
from ..spec import GoVersion, SpecError
from ..sumdb import SumDB
from ..targets import Target, Targets
from .errors import ToolchainRejected, ToolchainUnavailable, UnknownGoVersion, UnsupportedTarget
from .install import DOWNLOAD_TIMEOUT, PROGRESS_INTERVAL, Installer
from .platform import Toolchain, _dist_list, discover_local, host_platform, read_goversion
from .versions import (
    _MINOR_LATEST,
    REFRESH_INTERVAL,
    RETRY_BACKOFF,
    SUPPORTED_MINORS,
    TOOLCHAIN_MODULE,
    TOOLCHAIN_MODULE_VERSION,
    VersionList,
    VersionPolicy,
    goversions_from_list,
    sort_goversions,
    supported_versions,
    toolchain_module_version,
)

__all__ = [
    "DOWNLOAD_TIMEOUT", "PROGRESS_INTERVAL", "REFRESH_INTERVAL", "RETRY_BACKOFF", "SUPPORTED_MINORS",
    "TOOLCHAIN_MODULE", "TOOLCHAIN_MODULE_VERSION", "Toolchain", "ToolchainRejected", "ToolchainUnavailable",
    "Toolchains", "UnknownGoVersion", "UnsupportedTarget", "VersionList", "VersionPolicy", "discover_local",
    "goversions_from_list", "host_platform", "read_goversion", "sort_goversions", "supported_versions",
    "toolchain_module_version",
]


class Toolchains:
    """The Go SDKs this server can build with: local ones, installed ones, and (with a proxy) any release."""

    def __init__(self, configured: Mapping[str, str], sdk_dir: Path, proxy: goproxy.GoProxyClient | None = None,
                 sumdb: SumDB | None = None, *, oldest: str = "", stop: str = "",
                 platform: tuple[str, str] | None = None, targets: Targets | None = None,
                 clock: Callable[[], float] = time.monotonic, refresh_interval: float = REFRESH_INTERVAL,
                 retry_backoff: float = RETRY_BACKOFF, runner: gocmd.GoRunner | None = None) -> None:
        """Register local SDKs; with a proxy, fetch missing ones, verified by sumdb (None: GOSUMDB=off)."""
        self.runner = runner or gocmd.GoRunner(None)  # runs `go version` and `go tool dist list`
        self.sdk_dir = sdk_dir
        self.proxy = proxy
        self.sumdb = sumdb
        self.policy = VersionPolicy(oldest, stop)
        self.platform = platform or (host_platform() if proxy is not None else ("", ""))
        self.targets = targets
        self.home = sdk_dir / ".gohome"  # HOME of the go commands run here (not a version: a dot dir)
        self._lock = threading.Lock()
        self._target_cache: dict[str, tuple[list[Target], frozenset[Target]]] = {}  # targets, broken ones
        self._sdks: dict[str, Toolchain] = {}
        self._generation = 0  # grows with every SDK installed and every target list read
        # configured SDKs were checked to be the versions they claim with the config (services.check)
        for goversion, goroot in (configured or discover_local()).items():
            self._sdks[goversion] = Toolchain(goversion, Path(goroot))
        for d in sorted(sdk_dir.glob("go1.*")) if sdk_dir.is_dir() else []:
            if (d / "bin" / "go").exists() and d.name not in self._sdks:
                self._sdks[d.name] = Toolchain(d.name, d)
        self._listed = (VersionList(self._fetch_versions, refresh_interval, retry_backoff, clock)
                        if proxy is not None else None)
        self._installer = (Installer(sdk_dir, proxy, sumdb, self.platform, self.home, self.runner, self._register,
                                     self._unavailable) if proxy is not None else None)

    # --- which versions ---------------------------------------------------------------------

    def installed(self) -> list[str]:
        """Versions ready on disk (configured or downloaded), newest first."""
        with self._lock:
            return sort_goversions(list(self._sdks))

    def listed(self) -> list[str] | None:
        """Versions the module proxy offers for this platform, newest first; None if not known."""
        return self._listed.get() if self._listed is not None else None

    def stamp(self) -> tuple[int, tuple[float | None, float | None]] | None:
        """Equal stamps: the same installed, listed and broken versions (a kept page is current). None while
        a refresh of the proxy's list is due (a page rendered now would start one)."""
        listed = self._listed.stamp() if self._listed is not None else (None, None)
        if listed is None:
            return None
        with self._lock:
            return self._generation, listed

    def available(self) -> list[str]:
        """Versions this server can build with (installed or downloadable), newest first."""
        return sort_goversions(self.installed() + (self.listed() or []))

    def supported(self) -> list[str]:
        """The newest patch of the two newest minor releases, as the Go project supports them."""
        return supported_versions(self.available())

    def latest(self) -> str:
        """The newest allowed release, which "latest" in URLs resolves to."""
        for v in self.available():
            if GoVersion.parse(v).is_release() and self.policy.allows(v):
                return v
        raise UnknownGoVersion("no Go toolchain available on this server")

    def latest_of_minor(self, minor: int) -> str:
        """The newest allowed patch release of go1.<minor> ("go1.N.latest")."""
        for v in self.available():
            parsed = GoVersion.parse(v)
            if parsed.minor == minor and parsed.is_release() and self.policy.allows(v):
                return v
        raise UnknownGoVersion(f"bad goversion go1.{minor}.latest: no allowed release of go1.{minor} available")

    def resolve(self, goversion: str) -> str:
        """The canonical version for "latest", "go1.N.latest" or a version, checked but not installed."""
        if goversion == "latest":
            return self.latest()
        if m := _MINOR_LATEST.fullmatch(goversion):
            return self.latest_of_minor(int(m.group(1)))
        name = self._checked(goversion)
        listed = self.listed()
        # Refuse early only when the proxy's list is known; otherwise get() will find out.
        if name not in self.installed() and (self.proxy is None or (listed is not None and name not in listed)):
            raise UnknownGoVersion(self._unavailable(name))
        return name

    def refresh(self) -> bool:
        """Fetch the proxy's version list now; return whether that worked."""
        return self._listed.refresh() if self._listed is not None else True

    def _fetch_versions(self) -> list[str]:
        """The proxy's Go versions for this platform; a proxy without golang.org/toolchain offers none."""
        assert self.proxy is not None
        try:
            versions = self.proxy.list(TOOLCHAIN_MODULE)
        except goproxy.ModuleNotFound:
            return []
        return goversions_from_list(versions, *self.platform)

    def _checked(self, goversion: str) -> str:
        """The canonical spelling of goversion, or UnknownGoVersion if malformed or not allowed."""
        try:
            name = str(GoVersion.parse(goversion))
        except SpecError as e:
            raise UnknownGoVersion(str(e)) from e
        self.policy.check(name)
        return name

    def _unavailable(self, goversion: str) -> str:
        """The message for a version this server does not have."""
        have = ", ".join(self.installed()) or "none"
        where = f" nor on the module proxy for {'/'.join(self.platform)}" if self.proxy is not None else ""
        return f"bad goversion {goversion!r}: not available on this server{where} (installed: {have})"

    # --- getting one --------------------------------------------------------------------------

    def get(self, goversion: str) -> Toolchain:
        """The SDK for goversion, installed from the module proxy first if needed; or UnknownGoVersion."""
        name = self._checked(goversion)
        with self._lock:
            sdk = self._sdks.get(name)
        if sdk is not None:
            return sdk
        if self.proxy is None:
            raise UnknownGoVersion(self._unavailable(goversion))
        return self._install_once(name)

    def _install_once(self, goversion: str) -> Toolchain:
        """Install goversion, or wait for the thread already installing it; failures are not kept."""
        assert self._installer is not None
        return self._installer.install_once(goversion)

    def _register(self, sdk: Toolchain) -> None:
        """Make a newly installed SDK available to get()."""
        with self._lock:
            self._sdks[sdk.goversion] = sdk
            self._generation += 1

    # --- targets ----------------------------------------------------------------------------

    def targets_for(self, goversion: str) -> list[Target]:
        """The GOOS/GOARCH pairs goversion can build (`go tool dist list -json -broken`), first-class first."""
        name = self.resolve(goversion)
        with self._lock:
            cached = self._target_cache.get(name)
        if cached is not None:
            return list(cached[0])
        found, broken = _dist_list(self.get(name), self.home, self.runner)
        with self._lock:
            self._target_cache[name] = (found, broken)
            self._generation += 1
        if self.targets is not None:
            self.targets.learn(found)
        return list(found)

    def broken_targets(self, goversion: str) -> frozenset[Target]:
        """The ports goversion's own list calls broken, if its targets were listed already (never installs)."""
        with self._lock:
            cached = self._target_cache.get(goversion)
        return cached[1] if cached is not None else frozenset()

    def check_target(self, goversion: str, goos: str, goarch: str) -> None:
        """Raise UnsupportedTarget (422) unless goversion can build for goos/goarch."""
        supported = self.targets_for(goversion)
        if (goos, goarch) not in supported:
            first = ", ".join(f"{o}/{a}" for o, a in supported[:8])
            raise UnsupportedTarget(f"{goversion} does not support target {goos}/{goarch} "
                                    f"(it supports {len(supported)} targets, e.g. {first})")
