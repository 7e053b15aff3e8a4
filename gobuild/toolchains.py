"""Go SDKs: the locally configured ones and those unpacked under data/sdk/, and which is "latest"."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from .config import ConfigError
from .failures import UserError
from .spec import GoVersion, SpecError


class UnknownGoVersion(UserError):
    """The requested Go version is malformed or not available here (a user error)."""


@dataclass(frozen=True)
class Toolchain:
    """One usable Go SDK."""

    goversion: str
    goroot: Path

    @property
    def go(self) -> Path:
        """The go binary of this SDK."""
        return self.goroot / "bin" / "go"


def read_goversion(goroot: Path) -> str:
    """Ask an SDK's own go binary for its version (`go version` prints "go version goX linux/amd64")."""
    go = goroot / "bin" / "go"
    try:
        out = subprocess.run([str(go), "version"], capture_output=True, text=True, timeout=60,
                             env={"GOTOOLCHAIN": "local", "HOME": str(goroot)})
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ConfigError(f"toolchain {goroot}: cannot run {go}: {e}") from e
    fields = out.stdout.split()
    if out.returncode != 0 or len(fields) < 3 or fields[:2] != ["go", "version"]:
        raise ConfigError(f"toolchain {goroot}: unexpected `go version` output {out.stdout.strip()!r}")
    return fields[2]


def discover_local() -> dict[str, str]:
    """The Go on PATH, registered under its own version (so a fresh clone just works)."""
    go = shutil.which("go")
    if not go:
        return {}
    try:  # ask go itself: PATH may hold a wrapper script rather than GOROOT/bin/go
        out = subprocess.run([go, "env", "GOROOT"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ConfigError(f"cannot run {go}: {e}") from e
    if out.returncode != 0 or not out.stdout.strip():
        raise ConfigError(f"`{go} env GOROOT` failed: {out.stderr.strip()}")
    goroot = Path(out.stdout.strip())
    return {read_goversion(goroot): str(goroot)}


class Toolchains:
    """The Go SDKs this server can build with."""

    def __init__(self, configured: Mapping[str, str], sdk_dir: Path) -> None:
        self.sdk_dir = sdk_dir
        self._sdks: dict[str, Toolchain] = {}
        for goversion, goroot in (configured or discover_local()).items():
            actual = read_goversion(Path(goroot))
            if actual != goversion:
                raise ConfigError(f"config: toolchain {goversion} at {goroot} is really {actual}")
            self._sdks[goversion] = Toolchain(goversion, Path(goroot))
        for d in sorted(sdk_dir.glob("go1.*")) if sdk_dir.is_dir() else []:
            if (d / "bin" / "go").exists() and d.name not in self._sdks:
                self._sdks[d.name] = Toolchain(d.name, d)

    def get(self, goversion: str) -> Toolchain:
        """The SDK for goversion, or UnknownGoVersion."""
        try:
            GoVersion.parse(goversion)
        except SpecError as e:
            raise UnknownGoVersion(str(e)) from e
        sdk = self._sdks.get(goversion)
        if sdk is None:
            have = ", ".join(self.installed()) or "none"
            raise UnknownGoVersion(f"bad goversion {goversion!r}: not available on this server (available: {have})")
        return sdk

    def installed(self) -> list[str]:
        """Available versions, newest first."""
        return sorted(self._sdks, key=lambda v: GoVersion.parse(v).key, reverse=True)

    def latest(self) -> str:
        """The newest available release, which "latest" in URLs resolves to."""
        releases = [v for v in self.installed() if GoVersion.parse(v).is_release()]
        if not releases:
            raise UnknownGoVersion("no Go toolchain available on this server")
        return releases[0]
