"""Safe unpacking of a Go toolchain module zip (golang.org/toolchain@<v>) into a GOROOT directory.

Every entry is checked before anything is written, with the rules the go command applies to a
module zip (golang.org/x/mod/zip checkZip): under the "<path>@<version>/" prefix, a clean file
path (no absolute paths, no "..", no odd characters), no case-insensitive collisions, go.mod
only at the root, a bounded total size. Links are refused outright: module zips never hold
them, so one can only be an attack. Files are written fresh (O_EXCL, O_NOFOLLOW) with mode 0644,
or 0755 where the go command makes them executable, since module zips carry no file modes.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
import zipfile
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from . import module

# Go's modzip.MaxZipFile: the limit on the total uncompressed size of a module.
MAX_UNPACKED_BYTES = 500 << 20
_CHUNK = 1 << 20


class UnsafeZip(ValueError):
    """A zip entry that must not be unpacked; the whole zip is refused."""


@dataclass(frozen=True)
class _Entry:
    """One checked zip entry: its name relative to the prefix, and whether it is a directory."""

    info: zipfile.ZipInfo
    rel: str
    is_dir: bool


def unpack(zip_path: Path, prefix: str, dest: Path) -> None:
    """Unpack the zip's entries under prefix into dest (created; must not exist), or raise UnsafeZip."""
    with zipfile.ZipFile(zip_path) as z:
        entries = check_entries(z, prefix)
        dest.mkdir()
        for entry in entries:
            target = dest / entry.rel
            if entry.is_dir:
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                _write(z, entry.info, target, 0o755 if _is_executable(entry) else 0o644)
    _install_go_mods(dest)


def check_entries(z: zipfile.ZipFile, prefix: str) -> list[_Entry]:
    """All entries of z, checked like the go command checks a module zip; UnsafeZip on the first bad one."""
    if not prefix.endswith("/"):
        raise ValueError("prefix must end in /")
    entries: list[_Entry] = []
    seen: dict[str, tuple[str, bool]] = {}
    total = 0
    for info in z.infolist():
        name = info.filename
        if not name.startswith(prefix):
            raise UnsafeZip(f"zip entry {name!r}: path does not have prefix {prefix!r}")
        rel = name[len(prefix):]
        if rel == "":
            continue
        is_dir = rel.endswith("/")
        rel = rel.removesuffix("/")
        _check_rel(name, rel)
        if _is_link(info):
            raise UnsafeZip(f"zip entry {name!r}: is a symbolic link")
        _check_collision(seen, rel, is_dir)
        if not is_dir:
            _check_go_mod(name, rel)
            total += info.file_size
            if total > MAX_UNPACKED_BYTES:
                raise UnsafeZip(f"zip contents larger than {MAX_UNPACKED_BYTES} bytes")
        entries.append(_Entry(info, rel, is_dir))
    return entries


def _check_rel(name: str, rel: str) -> None:
    """Refuse a path that is not clean or not a valid module file path (Go's module.CheckFilePath)."""
    if posixpath.normpath(rel) != rel or rel.startswith("/"):
        raise UnsafeZip(f"zip entry {name!r}: path is not clean")
    try:
        # module's file-path rule is Go's CheckFilePath: it refuses "..", ".", "", "\\", ":",
        # control characters and Windows device names.
        module.check_file_path(rel)
    except ValueError as e:
        raise UnsafeZip(f"zip entry {name!r}: {e}") from None


def _check_collision(seen: dict[str, tuple[str, bool]], rel: str, is_dir: bool) -> None:
    """Go's collisionChecker: no two entries may differ only in case, nor be both file and directory."""
    while True:
        fold = rel.casefold()
        if fold in seen:
            other, other_dir = seen[fold]
            if other != rel:
                raise UnsafeZip(f"case-insensitive file name collision: {other!r} and {rel!r}")
            if other_dir != is_dir:
                raise UnsafeZip(f"entry {rel!r} is both a file and a directory")
            if not is_dir:
                raise UnsafeZip(f"multiple entries for file {rel!r}")
        else:
            seen[fold] = (rel, is_dir)
        parent = posixpath.dirname(rel)
        if not parent:
            return
        rel, is_dir = parent, True


def _check_go_mod(name: str, rel: str) -> None:
    """A go.mod may only be the module's own, at the root (a nested one would start another module)."""
    base = posixpath.basename(rel)
    if base.casefold() == "go.mod" and rel != "go.mod":
        raise UnsafeZip(f"zip entry {name!r}: go.mod file not in module root directory")


def _is_link(info: zipfile.ZipInfo) -> bool:
    """Whether the entry's Unix mode (if any) says symbolic link."""
    return stat.S_ISLNK(info.external_attr >> 16)


def _is_executable(entry: _Entry) -> bool:
    """Whether the go command would make this file executable after download (toolchain/select.go)."""
    rel = entry.rel
    if rel.startswith(("bin/", "pkg/tool/")):
        return True
    if rel.startswith("lib/") and fnmatchcase(posixpath.basename(rel), "go_?*_?*_exec"):
        return True
    return bool((entry.info.external_attr >> 16) & 0o111)  # a zip that does record modes


def _write(z: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, mode: int) -> None:
    """Write one entry to a new file; never follows or replaces an existing path."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out, z.open(info) as src:
        written = 0
        while chunk := src.read(_CHUNK):
            written += len(chunk)
            if written > info.file_size:  # zipfile stops at file_size already; be explicit
                raise UnsafeZip(f"zip entry {info.filename!r} larger than it says")
            out.write(chunk)
        os.fchmod(out.fileno(), mode)  # exact, whatever the umask


def _install_go_mods(goroot: Path) -> None:
    """Copy each _go.mod to go.mod beside it, as the go command does after unpacking a toolchain.

    Module zips cannot hold nested go.mod files, so the toolchain module stores the standard
    library's (src/go.mod, src/cmd/go.mod) as _go.mod; without them std and cmd do not build.
    """
    for root, _, files in os.walk(goroot):
        if "_go.mod" in files:
            shutil.copyfile(Path(root, "_go.mod"), Path(root, "go.mod"))
