"""Go's "h1:" hash of a module (golang.org/x/mod/sumdb/dirhash Hash1), over a module zip or a directory.

Hash1 is the SHA-256 of a summary with one line "<hex sha256 of file>  <file name>\\n" per file,
names sorted bytewise; for a zip the names are the entry names including the "<path>@<version>/"
prefix, exactly as go.sum and the Go checksum database record them.
"""

from __future__ import annotations

import base64
import hashlib
import os
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, BinaryIO

_CHUNK = 1 << 16


class DirHashError(ValueError):
    """The files cannot be hashed the way Go does (a name with a newline, an unreadable zip)."""


def hash1(files: Iterable[str], open_file: Callable[[str], IO[bytes]]) -> str:
    """The h1: hash of the named files, opened one at a time with open_file."""
    summary = hashlib.sha256()
    # Sorting str by code point equals Go's bytewise sort of the UTF-8 names.
    for name in sorted(files):
        if "\n" in name:
            raise DirHashError("dirhash: filenames with newlines are not supported")
        with open_file(name) as f:
            digest = _sha256(f)
        summary.update(f"{digest}  {name}\n".encode())
    return "h1:" + base64.b64encode(summary.digest()).decode()


def hash_zip(source: Path | BinaryIO) -> str:
    """The h1: hash of a module zip (Go's HashZip): every entry by its full name."""
    try:
        with zipfile.ZipFile(source) as z:
            # As Go: duplicate names are each listed, and all read the last entry of that name.
            entries = {info.filename: info for info in z.infolist()}
            return hash1([info.filename for info in z.infolist()], lambda name: z.open(entries[name]))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as e:
        raise DirHashError(f"dirhash: reading zip: {e}") from e


def hash_dir(directory: Path, prefix: str) -> str:
    """The h1: hash of a directory tree as Go's HashDir: names are prefix + "/" + relative path."""
    files: dict[str, Path] = {}
    for root, dirs, names in os.walk(directory):
        dirs.sort()
        for name in names:
            path = Path(root, name)
            files[f"{prefix}/{path.relative_to(directory).as_posix()}"] = path
    return hash1(files, lambda name: open(files[name], "rb"))


def _sha256(f: IO[bytes]) -> str:
    """Hex SHA-256 of a stream, read in chunks."""
    h = hashlib.sha256()
    while chunk := f.read(_CHUNK):
        h.update(chunk)
    return h.hexdigest()
