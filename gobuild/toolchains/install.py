"""Installing a Go version from the module proxy the way the go command fetches one for GOTOOLCHAIN.

The module golang.org/toolchain@v0.0.1-<goversion>.<goos>-<goarch> for this server's platform is
downloaded, its h1: hash checked against the checksum database (GOSUMDB), unpacked safely into a
temporary directory, smoke-tested with `bin/go version` and renamed into place. Concurrent requests
share one download; a file lock covers other processes on the same data dir. Failures are not
remembered: the next request tries again.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

from .. import dirhash, gocmd, goproxy, module, toolchainzip
from ..config import ConfigError
from ..durable import fsync_dir
from ..sumdb import SumDB
from .errors import ToolchainRejected, ToolchainUnavailable, UnknownGoVersion
from .platform import Toolchain, read_goversion
from .versions import TOOLCHAIN_MODULE, toolchain_module_version

log = logging.getLogger(__name__)

DOWNLOAD_TIMEOUT = 1800.0  # seconds a whole toolchain download may take
PROGRESS_INTERVAL = 5.0  # seconds between progress lines while a toolchain downloads


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


class Installer:
    """Fetches missing Go versions into sdk_dir: one download per version, verified, smoke-tested."""

    def __init__(self, sdk_dir: Path, proxy: goproxy.GoProxyClient, sumdb: SumDB | None, platform: tuple[str, str],
                 home: Path, runner: gocmd.GoRunner, installed: Callable[[Toolchain], None],
                 unavailable: Callable[[str], str]) -> None:
        """installed registers a new SDK; unavailable words the error for a version the proxy lacks."""
        self.sdk_dir = sdk_dir
        self.proxy = proxy
        self.sumdb = sumdb
        self.platform = platform
        self.home = home
        self.runner = runner
        self._installed = installed
        self._unavailable = unavailable
        self._lock = threading.Lock()
        self._flights: dict[str, _Flight] = {}

    def install_once(self, goversion: str) -> Toolchain:
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
        self._installed(sdk)
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
        try:
            self.proxy.zip(TOOLCHAIN_MODULE, version, zip_path)
        except goproxy.ModuleNotFound as e:
            raise UnknownGoVersion(self._unavailable(goversion)) from e
        except goproxy.ProxyUnavailable as e:
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


def _report_progress(goversion: str, directory: Path, stop: threading.Event, started: float) -> None:
    """Log how much of a toolchain has arrived, every PROGRESS_INTERVAL seconds until stop is set."""
    while not stop.wait(PROGRESS_INTERVAL):
        size = 0
        for part in directory.glob(".toolchain.zip.*"):  # goproxy's temp file beside the zip
            with contextlib.suppress(OSError):  # renamed into place just now
                size += part.stat().st_size
        log.info("downloading Go toolchain %s: %.1f MB so far (%.0fs)", goversion, size / 1e6,
                 time.monotonic() - started)


