"""Go SDKs: the locally configured ones and those fetched from the module proxy into data/sdk/,
which versions are supported and "latest", and which targets each version can build for.

A missing version is installed on first use the way the go command fetches one for GOTOOLCHAIN:
the module golang.org/toolchain@v0.0.1-<goversion>.<goos>-<goarch> for this server's platform,
its h1: hash checked against the checksum database (GOSUMDB), unpacked safely into a temporary
directory, smoke-tested with `bin/go version` and renamed into place. Concurrent requests share
one download; a file lock covers other processes on the same data dir. Failures are not
remembered: the next request tries again.
"""

from __future__ import annotations

import contextlib
import logging
import platform as pyplatform
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from . import dirhash, gocmd, goproxy, module, toolchainzip
from .config import ConfigError
from .durable import fsync_dir, remove_tree
from .failures import BuildError, TemporaryFailure, UserError
from .spec import GoVersion, SpecError
from .sumdb import SumDB
from .targets import DistListError, Target, Targets, parse_dist_list

log = logging.getLogger(__name__)

TOOLCHAIN_MODULE = "golang.org/toolchain"
TOOLCHAIN_MODULE_VERSION = "v0.0.1"  # the go command's gotoolchainVersion
REFRESH_INTERVAL = 3600.0  # seconds between refreshes of the proxy's version list
RETRY_BACKOFF = 60.0  # seconds before a failed refresh is tried again
DOWNLOAD_TIMEOUT = 1800.0  # seconds a whole toolchain download may take
PROGRESS_INTERVAL = 5.0  # seconds between progress lines while a toolchain downloads
SUPPORTED_MINORS = 2  # the Go project supports the two newest minor releases

_MINOR_LATEST = re.compile(r"go1\.(0|[1-9][0-9]*)\.latest")

# Host platform names as Python reports them -> Go's GOOS/GOARCH.
_GOOS = {"linux": "linux", "darwin": "darwin", "freebsd": "freebsd", "openbsd": "openbsd",
         "netbsd": "netbsd", "dragonfly": "dragonfly", "aix": "aix"}
_GOARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "i386": "386",
           "i686": "386", "armv6l": "arm", "armv7l": "arm", "ppc64le": "ppc64le", "ppc64": "ppc64",
           "s390x": "s390x", "riscv64": "riscv64", "loongarch64": "loong64", "mips64": "mips64"}


class UnknownGoVersion(UserError):
    """The requested Go version is malformed or not available here (a user error)."""


class UnsupportedTarget(UserError):
    """The Go version cannot build for the requested GOOS/GOARCH."""


class ToolchainUnavailable(TemporaryFailure):
    """The module proxy failed while fetching a toolchain; the next request tries again."""


class ToolchainRejected(BuildError):
    """A downloaded toolchain failed a check (unsafe zip, smoke test); nothing was installed."""

    status = 502
    code = "toolchain-rejected"


@dataclass(frozen=True)
class Toolchain:
    """One usable Go SDK."""

    goversion: str
    goroot: Path

    @property
    def go(self) -> Path:
        """The go binary of this SDK."""
        return self.goroot / "bin" / "go"


def read_goversion(goroot: Path, home: Path | None = None, runner: gocmd.GoRunner | None = None) -> str:
    """Ask an SDK's own go binary for its version (`go version` prints "go version goX linux/amd64").

    With a sandboxed runner this runs isolated: a downloaded toolchain is unverified code with GOSUMDB=off.
    """
    runner = runner or gocmd.GoRunner(None)
    if not (goroot / "bin" / "go").is_file():
        raise ConfigError(f"toolchain {goroot}: cannot run {goroot / 'bin' / 'go'}: no such file")
    with _go_home(home) as gohome:
        try:
            output = runner.run(goroot, ["version"], gohome, 60)
        except gocmd.GoCommandError as e:
            raise ConfigError(f"toolchain {goroot}: unexpected `go version` output {e.output.strip()[:300]!r}") from e
        except OSError as e:
            raise ConfigError(f"toolchain {goroot}: cannot run {goroot / 'bin' / 'go'}: {e}") from e
    fields = output.split()
    if len(fields) < 3 or fields[:2] != ["go", "version"]:
        raise ConfigError(f"toolchain {goroot}: unexpected `go version` output {output.strip()!r}")
    return fields[2]


@contextlib.contextmanager
def _go_home(home: Path | None) -> Iterator[Path]:
    """home (created), else a temporary one.

    A persistent home is better: the go command may leave a detached telemetry child writing
    into $HOME/.config after it exits, and `go tool dist` is compiled into $HOME/.cache.
    """
    if home is not None:
        home.mkdir(parents=True, exist_ok=True)
        gocmd.prepare_home(home)
        yield home
        return
    tmp = Path(tempfile.mkdtemp(prefix="gobuild-gohome-"))
    try:
        gocmd.prepare_home(tmp)
        yield tmp
    finally:
        remove_tree(tmp)


def discover_local() -> dict[str, str]:
    """The Go on PATH, registered under its own version (so a fresh clone just works)."""
    go = shutil.which("go")
    if not go:
        return {}
    goroot = gocmd.host_go_env("GOROOT")  # ask go itself: PATH may hold a wrapper script rather than GOROOT/bin/go
    if not goroot:
        raise ConfigError(f"`{go} env GOROOT` failed")
    return {read_goversion(Path(goroot)): goroot}


def host_platform() -> tuple[str, str]:
    """This machine's GOOS and GOARCH, whose toolchains we can run."""
    system, machine = pyplatform.system().lower(), pyplatform.machine().lower()
    if system not in _GOOS or machine not in _GOARCH:
        raise ConfigError(f"no Go toolchain downloads for this platform ({system}/{machine})")
    return _GOOS[system], _GOARCH[machine]


# ------------------------------------------------------------------------------ version lists


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


# ------------------------------------------------------------------------------ the registry


class _Flight:
    """One install in progress; other threads wait for its outcome instead of downloading again."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Toolchain | None = None
        self.error: BaseException | None = None

    def wait(self) -> Toolchain:
        """The leader's toolchain, or its exception raised again."""
        self.done.wait()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


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
        self._flights: dict[str, _Flight] = {}
        self._target_cache: dict[str, tuple[list[Target], frozenset[Target]]] = {}  # targets, broken ones
        self._sdks: dict[str, Toolchain] = {}
        for goversion, goroot in (configured or discover_local()).items():
            actual = read_goversion(Path(goroot), self.home, self.runner)
            if actual != goversion:
                raise ConfigError(f"config: toolchain {goversion} at {goroot} is really {actual}")
            self._sdks[goversion] = Toolchain(goversion, Path(goroot))
        for d in sorted(sdk_dir.glob("go1.*")) if sdk_dir.is_dir() else []:
            if (d / "bin" / "go").exists() and d.name not in self._sdks:
                self._sdks[d.name] = Toolchain(d.name, d)
        self._listed = (VersionList(self._fetch_versions, refresh_interval, retry_backoff, clock)
                        if proxy is not None else None)

    # --- which versions ---------------------------------------------------------------------

    def installed(self) -> list[str]:
        """Versions ready on disk (configured or downloaded), newest first."""
        with self._lock:
            return sort_goversions(list(self._sdks))

    def listed(self) -> list[str] | None:
        """Versions the module proxy offers for this platform, newest first; None if not known."""
        return self._listed.get() if self._listed is not None else None

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
        except goproxy.NotFound:
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
        with self._lock:
            flight = self._flights.get(goversion)
            leader = flight is None
            if flight is None:
                flight = self._flights[goversion] = _Flight()
        if not leader:
            return flight.wait()
        try:
            flight.result = self._install(goversion)
            return flight.result
        except BaseException as e:
            flight.error = e
            raise
        finally:
            with self._lock:
                del self._flights[goversion]
            flight.done.set()

    def _install(self, goversion: str) -> Toolchain:
        """Download, verify, unpack, smoke-test and move into place, under a lock shared with other processes."""
        self.sdk_dir.mkdir(parents=True, exist_ok=True)
        dest = self.sdk_dir / goversion
        with FileLock(str(self.sdk_dir / f".{goversion}.lock")):
            if not (dest / "bin" / "go").exists():  # else another process installed it meanwhile
                self._clean_leftovers(goversion)
                tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{goversion}-", dir=self.sdk_dir))
                try:
                    self._install_into(goversion, tmp, dest)
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
        sdk = Toolchain(goversion, dest)
        with self._lock:
            self._sdks[goversion] = sdk
        return sdk

    def _install_into(self, goversion: str, tmp: Path, dest: Path) -> None:
        """The steps of an install, staged in tmp; dest appears only complete."""
        version = toolchain_module_version(goversion, *self.platform)
        zip_path = tmp / "toolchain.zip"
        self._download(goversion, version, zip_path)
        self._verify(goversion, version, zip_path)
        goroot = tmp / "go"
        try:
            toolchainzip.unpack(zip_path, f"{TOOLCHAIN_MODULE}@{version}/", goroot)
        except toolchainzip.UnsafeZip as e:
            raise ToolchainRejected(f"Go toolchain {goversion}: refusing its zip: {e}") from e
        self._smoke_test(goversion, goroot, self.home, self.runner)
        if dest.exists():  # a partial tree someone left by hand: we hold the lock, set it aside
            dest.rename(tmp / "old")
        goroot.rename(dest)
        fsync_dir(self.sdk_dir)
        log.info("installed Go toolchain %s in %s", goversion, dest)

    def _clean_leftovers(self, goversion: str) -> None:
        """Remove staging dirs of this version that a crashed install left (we hold its lock)."""
        for old in self.sdk_dir.glob(f".tmp-{goversion}-*"):
            shutil.rmtree(old, ignore_errors=True)

    def _download(self, goversion: str, version: str, zip_path: Path) -> None:
        """Fetch the toolchain zip, logging progress while it takes long."""
        log.info("downloading Go toolchain %s (%s@%s)", goversion, TOOLCHAIN_MODULE, version)
        started = time.monotonic()
        stop = threading.Event()
        watcher = threading.Thread(target=_report_progress, args=(goversion, zip_path.parent, stop, started),
                                   name=f"progress-{goversion}", daemon=True)
        watcher.start()
        assert self.proxy is not None
        try:
            self.proxy.zip(TOOLCHAIN_MODULE, version, zip_path)
        except goproxy.NotFound as e:
            raise UnknownGoVersion(self._unavailable(goversion)) from e
        except goproxy.RemoteError as e:
            raise ToolchainUnavailable(f"downloading Go toolchain {goversion}: {e}") from e
        except module.InvalidVersion as e:
            raise UnknownGoVersion(f"bad goversion {goversion!r}: {e}") from e
        finally:
            stop.set()
            watcher.join()
        size = zip_path.stat().st_size
        log.info("downloaded Go toolchain %s: %.1f MB in %.1fs", goversion, size / 1e6, time.monotonic() - started)

    def _verify(self, goversion: str, version: str, zip_path: Path) -> None:
        """Check the zip's h1: hash against the checksum database (a mismatch raises; nothing is installed)."""
        try:
            h1 = dirhash.hash_zip(zip_path)
        except dirhash.DirHashError as e:
            raise ToolchainRejected(f"Go toolchain {goversion}: {e}") from e
        if self.sumdb is None:
            log.warning("GOSUMDB=off: not verifying Go toolchain %s (%s)", goversion, h1)
            return
        self.sumdb.check(TOOLCHAIN_MODULE, version, h1)
        log.info("verified Go toolchain %s against checksum database %s: %s", goversion, self.sumdb.name, h1)

    @staticmethod
    def _smoke_test(goversion: str, goroot: Path, home: Path, runner: gocmd.GoRunner | None = None) -> None:
        """Run bin/go version of the unpacked tree (sandboxed where possible); it must run and say goversion."""
        try:
            actual = read_goversion(goroot, home, runner)
        except ConfigError as e:
            raise ToolchainRejected(f"Go toolchain {goversion}: smoke test failed: {e}") from e
        if actual != goversion:
            raise ToolchainRejected(f"Go toolchain {goversion}: smoke test: `go version` says {actual}")

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


def _dist_list(sdk: Toolchain, home: Path, runner: gocmd.GoRunner) -> tuple[list[Target], frozenset[Target]]:
    """Run `go tool dist list -json -broken` of an SDK (without -broken before go1.21, which lacks it)."""
    try:
        output = _run_dist_list(sdk, home, runner, "-broken")
    except gocmd.GoCommandError as e:
        if "flag provided but not defined: -broken" not in e.output:
            raise _dist_list_failed(sdk, e) from e
        try:
            output = _run_dist_list(sdk, home, runner)
        except gocmd.GoCommandError as e2:
            raise _dist_list_failed(sdk, e2) from e2
    try:
        return parse_dist_list(output)
    except DistListError as e:
        raise ToolchainRejected(f"Go toolchain {sdk.goversion}: {e}") from e


def _run_dist_list(sdk: Toolchain, home: Path, runner: gocmd.GoRunner, *flags: str) -> str:
    with _go_home(home) as gohome:
        try:
            return runner.run(sdk.goroot, ["tool", "dist", "list", "-json", *flags], gohome, 300)
        except OSError as e:
            raise ToolchainRejected(f"Go toolchain {sdk.goversion}: go tool dist list: {e}") from e


def _dist_list_failed(sdk: Toolchain, e: gocmd.GoCommandError) -> ToolchainRejected:
    return ToolchainRejected(f"Go toolchain {sdk.goversion}: go tool dist list failed: {e.output.strip()[:300]}")


def _report_progress(goversion: str, directory: Path, stop: threading.Event, started: float) -> None:
    """Log how much of a toolchain has arrived, every PROGRESS_INTERVAL seconds until stop is set."""
    while not stop.wait(PROGRESS_INTERVAL):
        size = 0
        for part in directory.glob(".toolchain.zip.*"):  # goproxy's temp file beside the zip
            with contextlib.suppress(OSError):  # renamed into place just now
                size += part.stat().st_size
        log.info("downloading Go toolchain %s: %.1f MB so far (%.0fs)", goversion, size / 1e6,
                 time.monotonic() - started)


