"""Local Go SDKs: this host's GOOS/GOARCH, the Go on PATH, and what an SDK's own go binary reports
(its version, its targets)."""

from __future__ import annotations

import contextlib
import platform as pyplatform
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .. import gocmd
from ..config import ConfigError
from ..durable import remove_tree
from ..targets import DistListError, Target, parse_dist_list
from .errors import ToolchainRejected

# Host platform names as Python reports them -> Go's GOOS/GOARCH.
_GOOS = {"linux": "linux", "darwin": "darwin", "freebsd": "freebsd", "openbsd": "openbsd",
         "netbsd": "netbsd", "dragonfly": "dragonfly", "aix": "aix"}
_GOARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "i386": "386",
           "i686": "386", "armv6l": "arm", "armv7l": "arm", "ppc64le": "ppc64le", "ppc64": "ppc64",
           "s390x": "s390x", "riscv64": "riscv64", "loongarch64": "loong64", "mips64": "mips64"}


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

