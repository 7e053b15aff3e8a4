"""The build info Go embeds in every binary (what `go version -m` prints): read once per binary, parsed, cached.

`go version -m` runs through gocmd like every go command; its output (without the first line's
file name) is kept in data/buildinfo/<binary blob name>, as the binary never changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from . import gocmd
from .durable import write_atomic
from .store import Result, Store
from .toolchains import Toolchains

TIMEOUT = 60.0
_BLOB = re.compile(r"[0-9a-f]{64}")


class BuildInfoError(Exception):
    """The build info could not be read from a binary."""


@dataclass(frozen=True)
class Module:
    """A module in the build: path, version and go.sum hash (h1:...), and what replaced it, if anything."""

    path: str
    version: str
    sum: str = ""
    replaced_by: Module | None = None


@dataclass(frozen=True)
class BuildInfo:
    """Go version, main package and module, dependencies and build settings of one binary."""

    go_version: str
    path: str
    main: Module | None
    deps: tuple[Module, ...] = ()
    settings: tuple[tuple[str, str], ...] = field(default=())
    text: str = ""  # the `go version -m` output it was parsed from, first line without the file name

    @classmethod
    def parse(cls, text: str) -> BuildInfo:
        """Parse `go version -m` output ("<file>: <go version>" then tab-separated lines)."""
        first, _, rest = text.partition("\n")
        go_version = first.rpartition(": ")[2].strip()
        if not go_version.startswith("go"):
            raise BuildInfoError(f"not the output of go version -m: {first[:100]!r}")
        path, main, deps, settings = "", None, [], []
        for line in rest.splitlines():
            kind, *fields = line.strip("\t").split("\t")
            if kind == "path" and fields:
                path = fields[0]
            elif kind in ("mod", "dep") and len(fields) >= 2:
                mod = Module(fields[0], fields[1], fields[2] if len(fields) > 2 else "")
                if kind == "mod":
                    main = mod
                else:
                    deps.append(mod)
            elif kind == "=>" and len(fields) >= 2 and deps:
                replacement = Module(fields[0], fields[1], fields[2] if len(fields) > 2 else "")
                deps[-1] = Module(deps[-1].path, deps[-1].version, deps[-1].sum, replacement)
            elif kind == "build" and fields:
                key, _, value = fields[0].partition("=")
                settings.append((key, value))
        return cls(go_version, path, main, tuple(deps), tuple(settings), f"{go_version}\n{rest}")


def read(store: Store, toolchains: Toolchains, paths: gocmd.GoPaths, result: Result, goversion: str) -> BuildInfo:
    """The build info of a result's binary, from the cache or from `go version -m`."""
    if not _BLOB.fullmatch(result.binary):
        raise BuildInfoError(f"bad blob name {result.binary!r}")
    cached = store.root / "buildinfo" / result.binary
    try:
        return BuildInfo.parse("binary: " + cached.read_text())
    except FileNotFoundError:
        pass
    text = _go_version_m(toolchains, paths, store.blob_path(result.binary), goversion)
    info = BuildInfo.parse(text)
    write_atomic(cached, info.text.encode())
    return info


def _go_version_m(toolchains: Toolchains, paths: gocmd.GoPaths, binary: Path, goversion: str) -> str:
    """Run `go version -m` with the toolchain that built the binary, else the newest installed one."""
    installed = toolchains.installed()
    if not installed:
        raise BuildInfoError("no Go toolchain installed to read the build info with")
    toolchain = toolchains.get(goversion if goversion in installed else installed[0])
    with gocmd.command_home(paths, "buildinfo") as home:
        env = gocmd.environment(paths, home, toolchain.goversion, "off")
        try:
            return gocmd.run([str(toolchain.go), "version", "-m", str(binary)], env, home, TIMEOUT)
        except gocmd.GoCommandError as e:
            raise BuildInfoError(f"go version -m: {e}: {e.output.strip()[-300:]}") from None
