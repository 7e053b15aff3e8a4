"""Installing the downloaded binary safely: gunzip with bounded memory, hash while writing to a temp file
beside the destination, and move it into place only if the sum and size match, never over an existing file."""

from __future__ import annotations

import hashlib
import os
import secrets
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from ..durable import fsync_dir
from ..spec import Record, sum_from_digest
from .errors import GetError

CHUNK = 1 << 16
GZIP_WBITS = 16 + zlib.MAX_WBITS  # zlib expects a gzip header and checks the CRC trailer
TEMP_MARK = ".gobuildget"  # temp files in bindir are named <name>.gobuildget<random>


def gunzip(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Decompress a gzip stream piece by piece (members may be concatenated, like Go's reader)."""
    d = zlib.decompressobj(GZIP_WBITS)
    seen = False
    try:
        for data in chunks:
            seen = seen or bool(data)
            while data:
                if d.eof:
                    d = zlib.decompressobj(GZIP_WBITS)  # the next gzip member
                # Bounded output per call: a small gzip cannot blow up memory.
                out = d.decompress(data, CHUNK)
                data = d.unused_data if d.eof else d.unconsumed_tail
                if out:
                    yield out
            while not d.eof and (out := d.decompress(b"", CHUNK)):
                yield out
    except zlib.error as e:
        raise GetError(f"downloaded file is not valid gzip: {e}") from None
    if not seen or not d.eof:
        raise GetError("downloaded file is not valid gzip: truncated")


def _create_temp(bindir: Path, name: str) -> tuple[int, Path]:
    """Create a new temp file <name>.gobuildget<random> in bindir; the mode follows the umask."""
    for _ in range(100):
        path = bindir / f"{name}{TEMP_MARK}{secrets.token_hex(6)}"
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), path
        except FileExistsError:
            continue
    raise GetError(f"cannot create a temp file in {bindir}")


def _add_exec_bits(fd: int) -> None:
    """Add execute permission wherever read permission is set (as chmod a+x would, by readers)."""
    if not hasattr(os, "fchmod"):
        return  # Windows: executability comes from the .exe name
    mode = os.fstat(fd).st_mode & 0o7777
    os.fchmod(fd, mode | (mode & 0o444) >> 2)


def _install(tmp: Path, dst: Path) -> None:
    """Move tmp to dst atomically, never replacing a file that appeared at dst meanwhile."""
    try:
        # A hard link, unlike rename, fails if dst exists.
        os.link(tmp, dst)
    except FileExistsError:
        raise GetError(f"{dst} already exists, not overwriting") from None
    except OSError:
        # A file system without hard links: check, then rename.
        if os.path.lexists(dst):
            raise GetError(f"{dst} already exists, not overwriting") from None
        os.replace(tmp, dst)
    else:
        os.unlink(tmp)
    fsync_dir(dst.parent)


def write_verified(chunks: Iterable[bytes], bindir: Path, dst: Path, record: Record,
                   progress: Callable[[int], None]) -> None:
    """Gunzip chunks into a temp file in bindir while hashing, then install it at dst if the sum matches."""
    fd, tmp = _create_temp(bindir, dst.name)
    try:
        h = hashlib.sha256()
        size = 0
        with os.fdopen(fd, "wb", closefd=False) as f:
            for piece in gunzip(chunks):
                size += len(piece)
                if size > record.size:
                    raise GetError(f"downloaded binary is larger than the {record.size} bytes in the record")
                h.update(piece)
                f.write(piece)
                progress(size)
            f.flush()
            got = sum_from_digest(h.digest())
            if got != record.sum:
                raise GetError(f"downloaded binary has sum {got}, expected {record.sum}")
            if size != record.size:
                raise GetError(f"downloaded binary has {size} bytes, expected {record.size}")
            _add_exec_bits(fd)
            os.fsync(fd)
        os.close(fd)
        fd = -1
        _install(tmp, dst)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
