"""Compiling one spec on this machine: download the module, check its main package, go install.

Stores nothing: a permanent failure is raised as CompileFailure for the caller to record (the
Builder in the server, the coordinator for a queue worker), the binary is left in the command's HOME.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from . import gocmd
from .failures import (
    UNCLASSIFIED,
    NotFound,
    TemporaryFailure,
    UserError,
    classify,
    is_temporary,
)
from .goproxy import redacted
from .packages import Package, Target, main_packages, scan
from .phases import Phase, count_compiles, marker
from .spec import BuildSpec, GoVersion
from .toolchains import Toolchain, Toolchains

log = logging.getLogger(__name__)

MIN_GO_MINOR = 16  # the first Go whose `go install` takes pkg@version
COMMANDS_CACHE_SIZE = 1024  # module versions whose command lists are kept


@dataclass(frozen=True)
class BuildSettings:
    """What a build needs to know from the configuration."""

    goproxy: str  # GOPROXY for go commands, 'direct' already dropped
    environment: tuple[str, ...] = ()
    build_timeout: float = 900.0
    prepare_timeout: float = 300.0
    sandbox: gocmd.Sandbox | None = None  # None: go runs unisolated, as the server's user


def reproduce_command(spec: BuildSpec, goproxy: str) -> str:
    """The shell command that builds the same bytes without gobuild (the environment of gocmd).

    Every word is shell-quoted, and a password in the proxy URL is shown as xxxxx.
    """
    ld = "-buildid= -s" if spec.stripped else "-buildid="
    env = {"GO111MODULE": "on", "GOPROXY": redacted(goproxy), "CGO_ENABLED": "0", "GOOS": spec.goos,
           "GOARCH": spec.goarch, "GOTOOLCHAIN": spec.goversion, **gocmd.version_environment(spec.goversion)}
    words = [f"{k}={shlex.quote(v)}" for k, v in env.items()]
    words += ["go", "install", "-trimpath", f"-ldflags='{ld}'", "--",
              shlex.quote(f"{spec.package}@{spec.version}")]
    return " ".join(words)


class CompileFailure(Exception):
    """The module cannot build as asked, for good: reason (failures.classify), error and go's output."""

    def __init__(self, reason: str, error: str, output: str) -> None:
        super().__init__(error)
        self.reason = reason
        self.error = error
        self.output = output


class Compiler:
    """Runs the go commands of a build with this machine's toolchains and caches."""

    def __init__(self, settings: BuildSettings, toolchains: Toolchains, paths: gocmd.GoPaths) -> None:
        self.settings = settings
        self.toolchains = toolchains
        self.paths = paths
        self.go = gocmd.GoRunner(paths, settings.goproxy, settings.environment, settings.sandbox)
        self._commands: dict[tuple[str, ...], tuple[str, ...]] = {}  # module page answers, without a go run
        self._commands_lock = threading.Lock()

    def compile(self, spec: BuildSpec, home: Path, out: BinaryIO) -> Path:
        """Download, check and compile spec with its toolchain in the command HOME home; the binary's path."""
        if GoVersion.parse(spec.goversion).minor < MIN_GO_MINOR:
            raise UserError(f"{spec.goversion} cannot build a command at a module version "
                            f"(`go install pkg@version` needs go1.{MIN_GO_MINOR} or newer)")
        if spec.goversion not in self.toolchains.installed():
            note(out, marker(Phase.INSTALLING_GO, spec.goversion))
        toolchain = self.toolchains.get(spec.goversion)
        self.toolchains.check_target(spec.goversion, spec.goos, spec.goarch)
        note(out, marker(Phase.DOWNLOADING, f"{spec.module}@{spec.version}"))
        try:
            moddir = self.download_module(toolchain, home, spec.module, spec.version, out)
        except _Unbuildable as e:
            raise CompileFailure(e.reason, "go mod download failed", e.output) from e
        check_main_package(spec, moddir)
        return self._go_install(spec, toolchain, home, moddir, out)

    def download_module(self, toolchain: Toolchain, home: Path, module: str, version: str,
                        out: BinaryIO | None = None) -> Path:
        """Fetch module@version into the shared module cache; return its source directory."""
        args = ["mod", "download", "-json", "--", f"{module}@{version}"]
        note(out, f"$ go mod download -json -- {module}@{version}\n")
        try:
            output = self.go.run(toolchain.goroot, args, home, self.settings.prepare_timeout,
                                 goversion=toolchain.goversion, network=True, modcache="rw")
        except gocmd.GoTimeout as e:
            raise TemporaryFailure(f"downloading {module}@{version}: timed out") from e
        except gocmd.GoCommandError as e:
            if _out_of_resources(e):
                raise TemporaryFailure(f"downloading {module}@{version}: {_last_line(e.output)}") from e
            output = e.output  # still holds the JSON with the reason in its Error field
        info = _parse_download_json(output)
        if info.get("Error") or not info.get("Dir"):
            raise _download_error(module, version, info.get("Error") or output)
        return self.go.host_path(info["Dir"], home)

    def main_packages(self, module: str, version: str, goos: str = "linux", goarch: str = "amd64") -> list[str]:
        """The dirs of module@version that are commands for goos/goarch, as the newest toolchain sees them."""
        goversion = self.toolchains.latest()
        key = (module, version, goos, goarch, goversion)
        with self._commands_lock:
            if (known := self._commands.get(key)) is not None:  # a module version never changes
                return list(known)
        toolchain = self.toolchains.get(goversion)
        with gocmd.command_home(self.paths, "listpkgs") as home:
            try:
                moddir = self.download_module(toolchain, home, module, version)
                found = main_packages(moddir, Target.of(goos, goarch, goversion))
            except _Unbuildable as e:
                raise UserError(f"{module}@{version} cannot be built ({e.reason}): {_last_line(e.output)}") from e
        with self._commands_lock:
            if len(self._commands) >= COMMANDS_CACHE_SIZE:
                self._commands.pop(next(iter(self._commands)))
            self._commands[key] = tuple(found)
        return found

    def _go_install(self, spec: BuildSpec, toolchain: Toolchain, home: Path, moddir: Path, out: BinaryIO) -> Path:
        """Run go install; return the path of the binary it wrote."""
        ld = "-ldflags=-buildid= -s" if spec.stripped else "-ldflags=-buildid="
        pkg = f"{spec.package}@{spec.version}"
        target = (spec.goos, spec.goarch)
        note(out, f"$ {reproduce_command(spec, self.settings.goproxy)}\n")
        try:
            # Download what the compile needs (dependencies), compiling nothing, and count the packages
            # to compile (those not in the build cache): the compile itself then runs without network
            # (in the sandbox), the module cache read-only.
            planned = self.go.run(toolchain.goroot, ["install", "-n", "-trimpath", ld, "--", pkg], home,
                                  self.settings.prepare_timeout, goversion=toolchain.goversion, target=target,
                                  network=True, modcache="rw")
            note(out, marker(Phase.COMPILING, f"{count_compiles(planned)} packages"))
            self._install(toolchain, home, ["-x", "-v", "-trimpath", ld, "--", pkg], target, out)
        except gocmd.GoTimeout as e:
            raise TemporaryFailure(f"build timed out after {self.settings.build_timeout:g}s") from e
        except gocmd.GoCommandError as e:
            if is_temporary(e.output) or _out_of_resources(e):
                raise TemporaryFailure(f"build failed, temporary: {_last_line(e.output)}") from e
            reason = classify(e.output)
            if reason == "build constraint excludes all go files" and _target_package(spec, moddir).cgo_names:
                reason = "cgo"
            raise CompileFailure(reason, str(e), e.output) from e
        bindir = home / "go" / "bin"
        for candidate in (bindir / f"{spec.goos}_{spec.goarch}" / spec.exec_name, bindir / spec.exec_name):
            if candidate.is_file():
                return candidate
        raise TemporaryFailure(f"go install succeeded but wrote no {spec.exec_name}")

    def _install(self, toolchain: Toolchain, home: Path, args: list[str], target: tuple[str, str],
                 out: BinaryIO) -> None:
        """go install args, offline; once more rebuilding everything (-a) if the build cache was broken."""
        def install(extra: list[str]) -> None:
            self.go.run(toolchain.goroot, ["install", *extra, *args], home, self.settings.build_timeout,
                        goversion=toolchain.goversion, target=target, network=False, modcache="ro", log=out)

        try:
            install([])
        except gocmd.GoCommandError as e:
            if isinstance(e, gocmd.GoTimeout) or not _BROKEN_CACHE.search(e.output):
                raise
            log.warning("go's build cache returned a package without its file; building all again: %s",
                        _BROKEN_CACHE.search(e.output))
            note(out, "\nthe build cache returned a package without its file: building everything again (-a)\n")
            note(out, marker(Phase.COMPILING))
            install(["-a"])  # the same bytes: -a only skips the cache


def check_main_package(spec: BuildSpec, moddir: Path) -> None:
    """Refuse to build what would not give a binary: a missing or non-main package."""
    pkg = _target_package(spec, moddir)
    if not pkg.has_go:
        raise NotFound(f"package {spec.package} does not exist in {spec.module}@{spec.version}")
    if pkg.names and not pkg.is_command and not pkg.invalid:  # else let go say why (constraints, cgo)
        raise UserError(f"package main does not exist for {spec.goos}/{spec.goarch}, building would not result "
                        f"in executable binary (package {', '.join(sorted(pkg.names))})")


def _target_package(spec: BuildSpec, moddir: Path) -> Package:
    """The package in spec's directory as go/build sees it for spec's target and Go version."""
    return scan(moddir / spec.dir.lstrip("/"), Target.of(spec.goos, spec.goarch, spec.goversion))


def _parse_download_json(output: str) -> dict[str, str]:
    """The JSON object `go mod download -json` prints (possibly after other lines)."""
    start = output.find("{")
    try:
        obj = json.loads(output[start:]) if start >= 0 else {}
    except json.JSONDecodeError:
        obj = {}
    return obj if isinstance(obj, dict) else {}


class _Unbuildable(Exception):
    """The module downloaded, but the go command says it can never build (e.g. needs a newer Go)."""

    def __init__(self, reason: str, output: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.output = output


# What go says of a module zip that can never be valid, whichever proxy serves it (x/mod/zip's checks).
_INVALID_ZIP = ("zip: not a valid zip file", "multiple entries for file", "module contents too large",
                "module source tree too large", "zip: unsupported compression algorithm", "zip: checksum error",
                "malformed file path", "case-insensitive file name collision", "zip: FileHeader.Extra too long")


# go's build cache handed back a package whose compiled file was missing (seen with a cache shared
# by sandboxed and unsandboxed go commands): the module is not at fault.
_BROKEN_CACHE = re.compile(r"could not import \S+ \(open : no such file or directory\)")


def _download_error(module: str, version: str, text: str) -> Exception:
    """Tell a module or version that does not exist from a proxy that failed."""
    text = text.strip()
    if (reason := classify(text)) != UNCLASSIFIED:
        return _Unbuildable(reason, text)
    if any(s in text for s in _INVALID_ZIP):
        return _Unbuildable("invalid module zip", text)
    if is_temporary(text):
        return TemporaryFailure(f"downloading {module}@{version}: {_last_line(text)}")
    if any(s in text for s in ("404 Not Found", "410 Gone", "unknown revision", "invalid version", "not found")):
        return NotFound(f"downloading {module}@{version}: {_last_line(text)}")
    if "malformed module path" in text or "invalid" in text:
        return UserError(f"downloading {module}@{version}: {_last_line(text)}")
    return TemporaryFailure(f"downloading {module}@{version}: {_last_line(text)}")


# A machine out of disk, memory or processes, or a command killed from outside: not the module's fault.
_RESOURCES = ("no space left on device", "disk quota exceeded", "cannot allocate memory", "out of memory",
              "signal: killed", "too many open files", "resource temporarily unavailable", "file too large")


def _out_of_resources(e: gocmd.GoCommandError) -> bool:
    """Whether a go command failed for want of resources or was killed by a signal."""
    return e.returncode < 0 or any(s in e.output.lower() for s in _RESOURCES)


MAX_DETAIL_LINES = 8  # indented lines kept under go's last message (go shows about as many of a server's answer)
MAX_MESSAGE = 1000  # characters of it in an error message; the whole output is in the build log


def _last_line(text: str) -> str:
    """go's last message: its last unindented line, with the indented lines that follow it (a proxy's
    "server response: ..." under its status line), on one line."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return text
    start = len(lines) - 1
    while start > 0 and lines[start][:1].isspace():
        start -= 1
    message = " ".join(line.strip() for line in lines[start:start + 1 + MAX_DETAIL_LINES])
    return message if len(message) <= MAX_MESSAGE else message[:MAX_MESSAGE] + "…"


def note(out: BinaryIO | None, text: str) -> None:
    if out is not None:
        out.write(text.encode())
        out.flush()

