"""On-disk results: content-addressed blobs, the spec → result index, stored failures; atomic writes."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from .durable import fsync_dir, process_dir, sweep_tmp
from .spec import BuildSpec, sum_from_digest

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # UTC

CHUNK = 1 << 20
RESULT_CACHE_SIZE = 20000  # published results kept in memory, a few hundred bytes each
NEGATIVE_TTL = 5.0  # seconds a "not built" answer is reused for check marks on links


@dataclass(frozen=True)
class Result:
    """A successful build: where its binary, gzipped binary and log are, and its log record."""

    spec: str
    sum: str
    size: int
    size_gz: int
    binary: str  # blob names (sha256 hex)
    binary_gz: str
    log: str
    created: str
    record_number: int | None = None
    appending_from: int | None = None  # candidates only: log size just before the record was appended


@dataclass(frozen=True)
class Failure:
    """A permanent build failure, kept until somebody retries."""

    spec: str
    reason: str
    error: str
    log: str  # blob name
    created: str


class Store:
    """Everything a build leaves behind, under one data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir
        for d in ("blobs/sha256", "results", "candidates", "failures", "tmp"):
            (data_dir / d).mkdir(parents=True, exist_ok=True)
        sweep_tmp(data_dir / "tmp")  # what a killed process left
        self.tmp = process_dir(data_dir / "tmp")
        self.tmp.mkdir(exist_ok=True)
        self._root = str(data_dir)
        self._results: OrderedDict[str, Result] = OrderedDict()
        self._misses: OrderedDict[str, float] = OrderedDict()
        self._cache_lock = threading.Lock()
        self.generation = 0  # grows whenever a result becomes known here: kept pages with check marks are stale

    # Blobs ---------------------------------------------------------------

    def blob_path(self, name: str) -> Path:
        """Where the blob with this sha256 hex name lives."""
        if len(name) != 64 or not all(c in "0123456789abcdef" for c in name):
            raise ValueError(f"bad blob name {name!r}")
        return self.root / "blobs" / "sha256" / name[:2] / name

    def put_blob_file(self, src: BinaryIO) -> tuple[str, int]:
        """Copy a stream into the blob store; return (name, size). Never holds it all in memory."""
        h = hashlib.sha256()
        size = 0
        with self._tempfile() as (tmp, f):
            while chunk := src.read(CHUNK):
                h.update(chunk)
                f.write(chunk)
                size += len(chunk)
            name = h.hexdigest()
            self._publish(tmp, f, self.blob_path(name))
        return name, size

    def put_blob_gzip(self, src: BinaryIO) -> tuple[str, int]:
        """Store the gzip of a stream (deterministic: no name or mtime; level 6: -9 costs 3x the time for 0.3%)."""
        with self._tempfile() as (tmp, f):
            with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0, compresslevel=6) as gz:
                shutil.copyfileobj(src, gz, CHUNK)
            f.flush()
            f.seek(0)
            h = hashlib.sha256()
            while chunk := f.read(CHUNK):
                h.update(chunk)
            name = h.hexdigest()
            size = f.tell()
            self._publish(tmp, f, self.blob_path(name))
        return name, size

    def put_blob(self, data: bytes) -> str:
        """Store small bytes (a log) as a blob."""
        return self.put_blob_file(io.BytesIO(data))[0]

    def _tempfile(self) -> Any:
        """A temp file in data/tmp, removed unless published."""
        return _TempFile(self.tmp)

    def _publish(self, tmp: Path, f: BinaryIO, target: Path) -> None:
        """fsync and rename a finished temp file into place (idempotent for blobs)."""
        f.flush()
        os.fchmod(f.fileno(), 0o644)  # public bytes; nginx, another user, may send blobs from disk
        os.fsync(f.fileno())
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, target)
        fsync_dir(target.parent)

    # Results and failures -------------------------------------------------

    @staticmethod
    def _key(spec: BuildSpec | str) -> str:
        # Specs hold '/' and may be long: name files by a hash of the spec string instead.
        return hashlib.sha256(str(spec).encode()).hexdigest()

    def _index_path(self, kind: str, spec: BuildSpec | str) -> str:
        # A plain string, not a Path: pages look up dozens of mostly missing results per view.
        key = self._key(spec)
        return f"{self._root}/{kind}/{key[:2]}/{key}.json"

    def _write_json(self, target: str, obj: dict[str, Any]) -> None:
        with self._tempfile() as (tmp, f):
            f.write(json.dumps(obj, indent=1, sort_keys=True).encode() + b"\n")
            self._publish(tmp, f, Path(target))

    def _read_json(self, path: str) -> dict[str, Any] | None:
        try:
            with open(path, "rb") as f:
                return json.loads(f.read())  # type: ignore[no-any-return]
        except FileNotFoundError:
            return None

    def result(self, spec: BuildSpec | str) -> Result | None:
        """The successful build of spec, if any."""
        key = str(spec)
        if (cached := self._results.get(key)) is not None:
            return cached
        obj = self._read_json(self._index_path("results", key))
        if obj is None:
            return None
        result = Result(**obj)
        self._remember(key, result)
        return result

    def result_hint(self, spec: BuildSpec, max_age: float = NEGATIVE_TTL) -> Result | None:
        """Like result(), but a miss is remembered for max_age seconds: for check marks on links,
        where a build published meanwhile may show a few seconds late. Never for serving."""
        key = str(spec)
        missed = self._misses.get(key)
        if missed is not None and time.monotonic() - missed < max_age:
            return None
        result = self.result(spec)
        if result is None:
            with self._cache_lock:
                self._misses[key] = time.monotonic()
                if len(self._misses) > RESULT_CACHE_SIZE:
                    self._misses.popitem(last=False)
        return result

    def _remember(self, key: str, result: Result) -> None:
        """Keep a published result in memory: it never changes once published (records are final)."""
        with self._cache_lock:
            self._results[key] = result
            self._misses.pop(key, None)
            self.generation += 1
            if len(self._results) > RESULT_CACHE_SIZE:
                self._results.popitem(last=False)

    def put_result(self, result: Result) -> None:
        """Record a success (its blobs must already be stored) and drop any stored failure."""
        for blob in (result.binary, result.binary_gz, result.log):
            if not self.blob_path(blob).exists():
                raise FileNotFoundError(f"result points at missing blob {blob}")
        self._write_json(self._index_path("results", result.spec), asdict(result))
        self.delete_failure(result.spec)
        self._remember(result.spec, result)

    def candidate(self, spec: BuildSpec) -> Result | None:
        """A build that is stored but not yet verified and logged, so not served."""
        obj = self._read_json(self._index_path("candidates", spec))
        return Result(**obj) if obj else None

    def put_candidate(self, candidate: Result) -> None:
        """Keep a built binary (blobs already stored) until it is verified and logged."""
        self._write_json(self._index_path("candidates", candidate.spec), asdict(candidate))

    def delete_candidate(self, spec: BuildSpec | str) -> None:
        """Forget a candidate once it is published."""
        Path(self._index_path("candidates", spec)).unlink(missing_ok=True)

    def failure(self, spec: BuildSpec) -> Failure | None:
        """The stored permanent failure of spec, if any."""
        obj = self._read_json(self._index_path("failures", spec))
        return Failure(**obj) if obj else None

    def put_failure(self, failure: Failure) -> None:
        """Record a permanent failure (its log blob must already be stored)."""
        self._write_json(self._index_path("failures", failure.spec), asdict(failure))

    def delete_failure(self, spec: BuildSpec | str) -> bool:
        """Forget a failure so the next request builds again; whether there was one."""
        try:
            os.unlink(self._index_path("failures", spec))
            return True
        except FileNotFoundError:
            return False

    def results(self) -> Iterator[Result]:
        """Every published result (a scan of the index: for startup and the admin pages)."""
        for path in (self.root / "results").glob("*/*.json"):
            if (obj := self._read_json(str(path))) is not None:
                yield Result(**obj)

    def failures(self) -> list[Failure]:
        """Every stored failure, newest first."""
        found = [Failure(**obj) for path in (self.root / "failures").glob("*/*.json")
                 if (obj := self._read_json(str(path))) is not None]
        return sorted(found, key=lambda f: f.created, reverse=True)

    def delete_blob(self, name: str) -> int:
        """Remove a blob (an evicted binary); the bytes freed."""
        path = self.blob_path(name)
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        return size

    def read_blob(self, name: str) -> bytes:
        """A small blob's bytes (logs)."""
        return self.blob_path(name).read_bytes()


class _TempFile:
    """Context manager yielding (path, file) of a new temp file that is deleted if not renamed."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def __enter__(self) -> tuple[Path, BinaryIO]:
        fd, name = tempfile.mkstemp(dir=self.directory, prefix="w-")
        self.path = Path(name)
        self.file = os.fdopen(fd, "w+b")
        return self.path, self.file

    def __exit__(self, *exc: object) -> None:
        self.file.close()
        self.path.unlink(missing_ok=True)


def digest_file(path: Path) -> tuple[str, int]:
    """The gobuild sum and size of a file, read in chunks."""
    digest, size = sha256_file(path)
    return sum_from_digest(digest), size


def sha256_file(path: Path) -> tuple[bytes, int]:
    """The sha256 and size of a file, read in chunks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.digest(), size


def now_text() -> str:
    """Now, as the store's timestamps (Result.created, Failure.created) and the admin page's lists write it."""
    return datetime.now(UTC).strftime(TIME_FORMAT)
