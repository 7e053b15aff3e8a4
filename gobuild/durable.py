"""Durable file writes: readers see the old file or the new one, whole, even after a crash."""

from __future__ import annotations

import os
import shutil
import stat
import sys
import threading
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in directory path survive a crash (POSIX only)."""
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace path with data: temp file beside it, fsync, rename, fsync the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists (it may be another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_tree(path: Path) -> None:
    """Remove a directory tree, also where go left it read-only (module cache files and dirs)."""

    def writable_then_retry(func, p, _exc):  # type: ignore[no-untyped-def]
        try:
            parent = os.path.dirname(p)
            os.chmod(parent, os.stat(parent).st_mode | stat.S_IWUSR | stat.S_IXUSR)
            func(p)
        except OSError:
            pass

    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.exists():
        if sys.version_info >= (3, 12):
            shutil.rmtree(path, onexc=writable_then_retry)
        else:
            shutil.rmtree(path, onerror=writable_then_retry)


def process_dir(tmp: Path) -> Path:
    """This process's own directory under tmp (p<pid>): what it leaves after a crash is swept by the next start."""
    return tmp / f"p{os.getpid()}"


def sweep_tmp(tmp: Path) -> None:
    """Remove everything in tmp but the p<pid> directories of processes still running (killed mid-write)."""
    if not tmp.is_dir():
        return
    for entry in tmp.iterdir():
        name = entry.name
        if name.startswith("p") and name[1:].isdigit() and process_alive(int(name[1:])):
            continue
        remove_tree(entry)
