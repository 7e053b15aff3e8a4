"""The transparency log on disk: append-only record, index and hash files, signed tree heads, tiles.

Files in the log directory (all only ever appended to, except that a torn tail is cut off):
  records       record texts, one after another
  record-index  per record the 8-byte big-endian end offset of its text in records
  hashes        tlog's stored hashes, 32 bytes each, in stored-hash-index order
  append.lock   a filelock: one appender at a time, across processes

Crash safety: an append writes records, then hashes, then the index entry, with an fsync after
each, so the index entry is the commit point. A record exists iff its index entry is complete;
bytes past the committed end of records and hashes are a torn tail and are truncated (under
the lock) before the next append. Readers use only the committed prefix.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from gobuild.durable import fsync_dir
from gobuild.errors import GobuildError
from gobuild.tlog import merkle, note
from gobuild.tlog.merkle import HASH_SIZE, Tree

RECORDS = "records"
RECORD_INDEX = "record-index"
HASHES = "hashes"
LOCK = "append.lock"
SIGNER_KEY = "signer.key"
VERIFIER_KEY = "verifier.key"

_OFFSET_SIZE = 8  # one big-endian end offset per record in record-index
# Hash reads closer together than this are merged into one read (a level-0 tile is one read).
_MAX_READ_SPAN = 1024
# Readers wait for an appender's fsyncs; poll often so a lookup is not delayed long.


class LogError(GobuildError):
    """Base class of transparency log failures."""

    status = 500
    code = "tlog-error"


class LogCorruptError(LogError):
    """The log files disagree in a way a crash cannot explain."""

    code = "tlog-corrupt"


class InvalidRecordError(LogError, ValueError):
    """Record text that the log format cannot hold (see note.is_valid_record_text)."""

    status = 400
    code = "invalid-record"


class RecordNotFound(LogError):
    """A record number at or beyond the size of the log."""

    status = 404
    code = "record-not-found"


class BadTilePath(LogError):
    """A tile path that is not tlog's canonical H/L/NNN[.p/W]."""

    status = 400
    code = "bad-tile-path"

    def __init__(self, path: str) -> None:
        super().__init__("invalid tile syntax")
        self.path = path


class TileNotFound(LogError):
    """A well-formed tile that reaches beyond the current tree."""

    status = 404
    code = "tile-not-found"


class _AppendLock:
    """Held while appending: flock on a lock file kept open (other processes), plus a thread lock.

    flock directly rather than the filelock package: its bookkeeping cost more than the
    hashing of an append (measured), and the lock is taken for every append and new tree head.
    """

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        self._threads = threading.Lock()  # flock does not exclude threads sharing the descriptor

    def __enter__(self) -> None:
        self._threads.acquire()
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _open_append(path: Path) -> int:
    """Open (creating) a log file for reading and appending."""
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)


def _write_all(fd: int, data: bytes) -> None:
    """Write all of data (os.write may write less) and fsync."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.fsync(fd)


def _pread_exact(fd: int, size: int, offset: int) -> bytes:
    """Read exactly size bytes at offset, or raise LogCorruptError."""
    data = os.pread(fd, size, offset)
    if len(data) != size:
        raise LogCorruptError(f"short read: {len(data)} of {size} bytes at offset {offset}")
    return data


class TransparencyLog:
    """An append-only log of records, served as tlog tiles with signed tree heads."""

    def __init__(self, directory: Path, signer_key: str) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._signer = note.Signer.parse(signer_key.strip())
        self.verifier_key = str(self._signer.verifier())
        self._cached_head: tuple[Tree, bytes] | None = None
        self._lock = _AppendLock(self.directory / LOCK)
        self._records = _open_append(self.directory / RECORDS)
        self._index = _open_append(self.directory / RECORD_INDEX)
        self._hashes = _open_append(self.directory / HASHES)
        fsync_dir(self.directory)
        try:
            with self._lock:
                n = self._repair_tail()
                self._verify_last_record(n)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close the log files."""
        for fd in (self._records, self._index, self._hashes):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._records = self._index = self._hashes = -1
        self._lock.close()

    def __enter__(self) -> TransparencyLog:
        return self

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # --- committed state ------------------------------------------------------------------

    def size(self) -> int:
        """Return the number of committed records (appends still under way may add more)."""
        return os.fstat(self._index).st_size // _OFFSET_SIZE

    def _end(self, n: int) -> int:
        """Return the end offset in records of record n (0 for n == -1)."""
        if n < 0:
            return 0
        return int.from_bytes(_pread_exact(self._index, _OFFSET_SIZE, n * _OFFSET_SIZE), "big")

    def _repair_tail(self) -> int:
        """Cut a torn tail off the files and check they agree; return the record count."""
        # Callers hold the file lock: nobody appends meanwhile.
        index_size = os.fstat(self._index).st_size
        n = index_size // _OFFSET_SIZE
        if index_size % _OFFSET_SIZE:
            os.ftruncate(self._index, n * _OFFSET_SIZE)  # a torn index entry: not committed
        end = self._end(n - 1)
        if n and end <= self._end(n - 2):
            raise LogCorruptError(f"record-index entry {n - 1} does not grow: {end}")
        self._cut(self._records, end, "records")
        self._cut(self._hashes, merkle.stored_hash_count(n) * HASH_SIZE, "hashes")
        return n

    @staticmethod
    def _cut(fd: int, want: int, name: str) -> None:
        """Truncate fd to want bytes; a shorter file is corruption, not a torn tail."""
        have = os.fstat(fd).st_size
        if have < want:
            raise LogCorruptError(f"{name} has {have} bytes, the index commits {want}")
        if have > want:
            os.ftruncate(fd, want)
            os.fsync(fd)

    def _verify_last_record(self, n: int) -> None:
        """Recompute the stored hashes of the last record and compare (as gobuild's start-up)."""
        if n == 0:
            return
        text = self.record(n - 1, size=n)
        want = merkle.stored_hashes(n - 1, text, self)
        start = merkle.stored_hash_index(0, n - 1)
        if self.read_hashes(range(start, start + len(want))) != want:
            raise LogCorruptError(f"stored hashes of record {n - 1} do not match its text")

    # --- reading ----------------------------------------------------------------------------

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        """Return the stored hashes at indexes (the merkle.HashReader protocol)."""
        limit = os.fstat(self._hashes).st_size // HASH_SIZE
        found: dict[int, bytes] = {}
        wanted = sorted(set(indexes))
        i = 0
        while i < len(wanted):
            if not 0 <= wanted[i] < limit:
                raise merkle.TlogError(f"stored hash index {wanted[i]} not in log")
            # Read a run of nearby indexes with one pread.
            j = i
            while j + 1 < len(wanted) and wanted[j + 1] - wanted[i] < _MAX_READ_SPAN and wanted[j + 1] < limit:
                j += 1
            first, last = wanted[i], wanted[j]
            data = _pread_exact(self._hashes, (last - first + 1) * HASH_SIZE, first * HASH_SIZE)
            for x in wanted[i : j + 1]:
                found[x] = data[(x - first) * HASH_SIZE : (x - first + 1) * HASH_SIZE]
            i = j + 1
        return [found[x] for x in indexes]

    def record(self, n: int, size: int | None = None) -> bytes:
        """Return the text of record n."""
        return self._records_range(n, 1, size)[0]

    def _records_range(self, start: int, count: int, size: int | None = None) -> list[bytes]:
        """Return the texts of records start..start+count-1 with two reads."""
        size = self.size() if size is None else size
        if start < 0 or count < 1 or start + count > size:
            raise RecordNotFound(f"records {start}..{start + count - 1} not in log of size {size}")
        first = max(start - 1, 0)
        raw = _pread_exact(self._index, (start + count - first) * _OFFSET_SIZE, first * _OFFSET_SIZE)
        ends = [int.from_bytes(raw[i : i + _OFFSET_SIZE], "big") for i in range(0, len(raw), _OFFSET_SIZE)]
        if start == 0:
            ends.insert(0, 0)
        if any(a >= b for a, b in itertools.pairwise(ends)):
            raise LogCorruptError(f"record-index does not grow around records {start}..{start + count - 1}")
        data = _pread_exact(self._records, ends[-1] - ends[0], ends[0])
        return [data[a - ends[0] : b - ends[0]] for a, b in itertools.pairwise(ends)]

    def tree(self) -> Tree:
        """Return the current tree head, only counting appends that are durable."""
        return self._head()[0]

    def _head(self) -> tuple[Tree, bytes]:
        """The current tree and its signed note, computed once per log size.

        An append's index entry is visible before its fsync ends, so a new size is only taken
        under the append lock: we never sign a tree that a power failure could take back (a fork
        for every client). A head computed that way stays durable, so while the size is
        unchanged it is served again without the lock, the tree hash or a new signature.
        """
        cached = self._cached_head
        if cached is not None and cached[0].n == self.size():
            return cached
        with self._lock:
            n = self.size()
        tree = Tree(n, merkle.tree_hash(n, self))
        head = (tree, note.sign(note.format_tree(tree), self._signer))
        cached = self._cached_head
        if cached is None or cached[0].n <= n:
            self._cached_head = head
        return head

    def signed_tree_head(self) -> bytes:
        """Return the signed note of the current tree, as served at /tlog/latest."""
        return self._head()[1]

    def signed_head(self, size: int) -> bytes:
        """Return the signed note of the tree of the first size records (a prefix of the current tree).

        Signing a past size is safe: it states nothing a client holding a later head cannot check.
        """
        if not 0 < size <= self.tree().n:
            raise RecordNotFound(f"no tree of {size} records in log of size {self.tree().n}")
        return note.sign(note.format_tree(Tree(size, merkle.tree_hash(size, self))), self._signer)

    def lookup_response(self, n: int) -> bytes:
        """Return "<n>\\n<record text>\\n<signed tree head>" for record n (a /tlog/lookup body)."""
        tree, signed = self._head()
        if not 0 <= n < tree.n:
            raise RecordNotFound(f"record {n} not in log of size {tree.n}")
        return note.format_record(n, self.record(n, size=tree.n)) + signed

    def tile(self, path: str) -> tuple[bytes, bool]:
        """Return (content, is_full_tile) for a tile path after /tlog/tile/, e.g. "8/0/000.p/11"."""
        try:
            t = merkle.parse_tile_path("tile/" + path)
        except merkle.BadTilePathError:
            raise BadTilePath(path) from None
        size = self.size()
        start = t.N << t.H
        if t.L == -1:
            if start + t.W > size:
                raise TileNotFound(f"tile {path} is beyond the log of {size} records")
            texts = self._records_range(start, t.W, size)
            return b"".join(note.format_record(start + i, text) for i, text in enumerate(texts)), t.is_full
        # Hashes at level L*H exist for complete subtrees only: size >> (L*H) of them.
        level = t.L * t.H
        if level >= size.bit_length() or start + t.W > size >> level:
            raise TileNotFound(f"tile {path} is beyond the log of {size} records")
        return merkle.read_tile_data(t, self), t.is_full

    def find(self, record: bytes, start: int = 0) -> int | None:
        """Return the number of the first record from start on with this exact text, or None."""
        size = self.size()
        batch = 4096
        for first in range(start, size, batch):
            for i, text in enumerate(self._records_range(first, min(batch, size - first), size)):
                if text == record:
                    return first + i
        return None

    # --- appending --------------------------------------------------------------------------

    def append(self, record: bytes) -> int:
        """Append a record durably and return its number."""
        if not note.is_valid_record_text(record):
            raise InvalidRecordError("record text must be UTF-8 lines without control characters or blank lines")
        with self._lock:
            # Another process may have appended (or crashed mid-append) since we last looked.
            n = self._repair_tail()
            hashes = merkle.stored_hashes(n, record, self)
            end = self._end(n - 1) + len(record)
            # Order matters: the index entry commits the record, so it goes last.
            _write_all(self._records, record)
            _write_all(self._hashes, b"".join(hashes))
            _write_all(self._index, end.to_bytes(_OFFSET_SIZE, "big"))
            return n


def _write_temp(path: Path, data: bytes, mode: int) -> Path:
    """Write data to a fresh temp file beside path, fsynced, and return its name."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        _write_all(fd, data)
    finally:
        os.close(fd)
    return tmp


def _create_once(path: Path, data: bytes, mode: int) -> None:
    """Create path with data unless it exists; readers never see a partial file."""
    tmp = _write_temp(path, data, mode)
    try:
        # link, unlike rename, fails if another process created the file first.
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    fsync_dir(path.parent)


def load_or_create_signer(directory: Path, name: str, signer_key_file: Path | None) -> tuple[str, str]:
    """Return (signer key, verifier key): from signer_key_file, else directory/signer.key, created if absent."""
    if signer_key_file is not None:
        signer = note.Signer.parse(Path(signer_key_file).read_text())
        return str(signer), str(signer.verifier())
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / SIGNER_KEY
    if not path.exists():
        _create_once(path, (note.generate_key(name)[0] + "\n").encode(), 0o600)
    # Whoever won a creation race, the key on disk is the one to use (with its own name).
    signer = note.Signer.parse(path.read_text())
    vkey = str(signer.verifier())
    vpath = directory / VERIFIER_KEY
    if not vpath.exists() or vpath.read_text().strip() != vkey:
        os.replace(_write_temp(vpath, (vkey + "\n").encode(), 0o644), vpath)
        fsync_dir(directory)
    return str(signer), vkey
