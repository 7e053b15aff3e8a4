"""The build job (download, main-package check, compile, hash, store) and the coordinator that runs jobs."""

from __future__ import annotations

import errno
import gzip
import hashlib
import itertools
import logging
import os
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO, Protocol

from filelock import FileLock

from . import gocmd
from .compiler import BuildSettings, CompileFailure, Compiler, note
from .durable import process_alive
from .failures import (
    BuildError,
    Busy,
    PermanentFailure,
    TemporaryFailure,
    failure_message,
)
from .phases import Phase, marker
from .spec import BuildSpec, Record, sum_from_digest
from .states import JobState
from .store import Failure, Result, Store, digest_file, now_text
from .targets import Targets
from .toolchains import Toolchains
from .verify import PeerMismatch, Peers, Verification

log = logging.getLogger(__name__)


class RecordLog(Protocol):
    """The part of the transparency log a build needs."""

    def append(self, record: bytes) -> int: ...
    def size(self) -> int: ...
    def find(self, record: bytes, start: int = 0) -> int | None: ...


class BuildObserver(Protocol):
    """Told when a build leaves the queue and when it ends (gobuild.metrics.Metrics)."""

    def build_started(self, spec: BuildSpec, queued_seconds: float) -> None: ...
    def build_ended(self, spec: BuildSpec, seconds: float, error: BaseException | None) -> None: ...


class RemoteCompiler(Protocol):
    """Compiles on other machines (gobuild.queue.BuildQueue): the candidate their upload stored."""

    def build(self, spec: BuildSpec, out: BinaryIO) -> Result: ...


class Unreproducible(BuildError):
    """Two builds of one spec gave different sums."""

    status = 409
    code = "unreproducible"

    def __init__(self, spec: BuildSpec, first: str, second: str) -> None:
        super().__init__(f"{spec} was built as {first} and now as {second}: not reproducible")
        self.spec, self.first, self.second = spec, first, second


class Builder:
    """Builds one spec: compile (here, on queue workers or fetched from peers), verify with peers, log, publish."""

    def __init__(self, settings: BuildSettings, store: Store, toolchains: Toolchains, cache_dir: Path,
                 tlog: RecordLog | None = None, verifier: Peers | None = None, compile: bool = True,
                 targets: Targets | None = None, remote: RemoteCompiler | None = None) -> None:
        self.compiler = Compiler(settings, toolchains, gocmd.GoPaths(store.root, cache_dir))
        self.settings = settings
        self.store = store
        self.toolchains = toolchains
        self.paths = self.compiler.paths
        self.tlog = tlog
        self.verifier = verifier
        self.compile = compile  # False: verify-only mode, binaries come from the verifiers
        self.targets = targets  # learns how often each target is built
        self.remote = remote  # None: compile in this process
        self.locks = store.root / "locks"
        self.locks.mkdir(exist_ok=True)
        if not compile and not (verifier and verifier.peers):
            raise ValueError("an instance that does not build needs verifiers")

    def _lock(self, spec: BuildSpec) -> FileLock:
        """The cross-process lock of one spec, held while compiling and while logging."""
        return FileLock(str(self.locks / (spec.key() + ".lock")))

    def build(self, spec: BuildSpec, out: BinaryIO, chain: tuple[str, ...] = (),
              compiled: Callable[[], None] = lambda: None) -> Result:
        """Compile spec (asking the verifiers meanwhile), compare with them, log, publish.

        chain names the instances a verification request came through (not asked again);
        compiled() is called when our own work is done and only the peers are waited for.
        """
        if (done := self.store.result(spec)) is not None:
            return done
        if (failed := self.store.failure(spec)) is not None:  # before asking peers to build in vain
            raise PermanentFailure(failed.reason, failed.error)
        verification = self.verifier.start(spec, chain) if self.verifier else None
        if not self.compile:
            assert verification is not None
            candidate = self._from_peers(spec, verification, out)
        else:
            candidate = self._candidate(spec, out)
            compiled()
            if candidate.record_number is not None:  # another process published it meanwhile
                return candidate
            if verification is not None:
                note(out, marker(Phase.VERIFYING, f"{len(verification.futures)} for their sum"))
                verification.check(Record(spec, candidate.size, candidate.sum))
                note(out, marker(Phase.LOGGING))
        return self._publish(spec, candidate)

    def _candidate(self, spec: BuildSpec, out: BinaryIO) -> Result:
        """A built but not yet logged result: from a stored candidate, or compiled now."""
        with self._lock(spec):
            if (done := self.store.result(spec)) is not None:
                return done
            if (failed := self.store.failure(spec)) is not None:
                raise PermanentFailure(failed.reason, failed.error)
            if (candidate := self.store.candidate(spec)) is not None:
                return candidate
            if self.remote is None:
                return self._build(spec, out)
        try:  # not under the lock: the worker's upload takes it (accept_upload)
            return self.remote.build(spec, out)
        except CompileFailure as e:
            raise self.store_failure(spec, e.reason, e.error, e.output) from e

    def accept_upload(self, spec: BuildSpec, binary: Path, log: bytes) -> Result:
        """Store a binary a queue worker built as spec's candidate, hashed here (its claims count for nothing).

        A second build of a spec (its job was taken up again) must give the same sum: if it does not,
        Unreproducible is raised and an unlogged candidate is dropped, so neither is logged.
        """
        sum_, size = digest_file(binary)
        with self._lock(spec):
            if (known := self.store.result(spec) or self.store.candidate(spec)) is not None:
                if known.sum != sum_:
                    if known.record_number is None:
                        self.store.delete_candidate(spec)
                    raise Unreproducible(spec, known.sum, sum_)
                return known
            with open(binary, "rb") as f:
                return self._store_candidate(spec, f, sum_, size, log)

    def rebuild(self, spec: BuildSpec, out: BinaryIO) -> Result:
        """Compile a logged spec again (its binary was evicted): the new, unpublished result."""
        with self._lock(spec):
            candidate = self._build(spec, out)
            self.store.delete_candidate(spec)
            return candidate

    def _publish(self, spec: BuildSpec, candidate: Result) -> Result:
        """Append the record to the log, then make the result visible.

        Before appending, the candidate notes the log size; after a crash between append and
        publish, the record is found again from there instead of being logged twice.
        """
        with self._lock(spec):
            if (done := self.store.result(spec)) is not None:
                return done
            candidate = self._still_candidate(spec, candidate)
            number = None
            if self.tlog is not None:
                record = Record(spec, candidate.size, candidate.sum).pack()
                if candidate.appending_from is not None:
                    number = self.tlog.find(record, candidate.appending_from)
                if number is None:
                    self.store.put_candidate(replace(candidate, appending_from=self.tlog.size()))
                    number = self.tlog.append(record)
            result = replace(candidate, record_number=number, appending_from=None)
            self.store.put_result(result)
            self.store.delete_candidate(spec)
        if self.targets is not None:
            self.targets.count((spec.goos, spec.goarch))
        return result

    def _still_candidate(self, spec: BuildSpec, candidate: Result) -> Result:
        """The stored candidate, if it is still the one verified (the lock is held).

        A second upload with another sum (accept_upload) drops the candidate while its build waits on
        the verifiers: then that build must log nothing either."""
        stored = self.store.candidate(spec)
        if stored is None:
            raise Unreproducible(spec, candidate.sum, "something else (its candidate was dropped by a "
                                 "reproducibility alarm)")
        if stored.sum != candidate.sum:
            raise Unreproducible(spec, candidate.sum, stored.sum)
        return stored

    def _build(self, spec: BuildSpec, out: BinaryIO) -> Result:
        """Compile spec here; store the result as a candidate, a permanent failure as a failure."""
        with gocmd.command_home(self.paths, "build") as home:
            try:
                binary = self.compiler.compile(spec, home, out)
            except CompileFailure as e:
                raise self.store_failure(spec, e.reason, e.error, e.output) from e
            return self._store(spec, binary, out)

    def main_packages(self, module: str, version: str, goos: str = "linux", goarch: str = "amd64") -> list[str]:
        """The dirs of module@version that are commands for goos/goarch (Compiler.main_packages)."""
        return self.compiler.main_packages(module, version, goos, goarch)

    def store_failure(self, spec: BuildSpec, reason: str, error: str, output: str) -> PermanentFailure:
        message = failure_message(reason, output, error)
        logblob = self.store.put_blob(f"{error}\n\n{output}".encode())
        self.store.put_failure(Failure(str(spec), reason, message, logblob, now_text()))
        return PermanentFailure(reason, message)

    def _store(self, spec: BuildSpec, binary: Path, out: BinaryIO) -> Result:
        """Hash the binary and store it, its gzip and the log as blobs; keep it as a candidate."""
        note(out, "\n" + marker(Phase.HASHING))
        sum_, size = digest_file(binary)
        note(out, f"built {spec.exec_name}: {size} bytes, sum {sum_}\n")
        out.flush()
        with open(binary, "rb") as f:
            return self._store_candidate(spec, f, sum_, size, Path(out.name).read_bytes())

    def _store_candidate(self, spec: BuildSpec, binary: BinaryIO, sum_: str, size: int, log: bytes) -> Result:
        bin_blob, _ = self.store.put_blob_file(binary)
        binary.seek(0)
        gz_blob, size_gz = self.store.put_blob_gzip(binary)
        log_blob = self.store.put_blob(log)
        candidate = Result(str(spec), sum_, size, size_gz, bin_blob, gz_blob, log_blob, now_text())
        self.store.put_candidate(candidate)
        return candidate

    def _from_peers(self, spec: BuildSpec, verification: Verification, out: BinaryIO) -> Result:
        """Verify-only mode: accept a build only when all verifiers agree, and take their binary."""
        note(out, marker(Phase.VERIFYING, f"{len(verification.futures)} to build {spec}"))
        records = verification.records()
        first_peer, record = next(iter(records.items()))
        verification.check(record)  # every peer must have logged exactly this record
        with self._lock(spec):
            if (done := self.store.result(spec)) is not None:
                return done
            with tempfile.NamedTemporaryFile(dir=self.store.tmp) as gz, \
                    tempfile.TemporaryFile(dir=self.store.tmp) as binary:
                assert self.verifier is not None
                self.verifier.fetch_gz(first_peer, record, Path(gz.name))
                sum_, size = _gunzip_digest(Path(gz.name), binary)
                if (sum_, size) != (record.sum, record.size):
                    raise PeerMismatch(f"binary from {first_peer.url} has sum {sum_} (size {size}), "
                                   f"its log says {record.sum} (size {record.size})")
                note(out, f"fetched {spec.exec_name} from {first_peer.url}: {size} bytes, sum {sum_}\n")
                binary.seek(0)
                out.flush()
                return self._store_candidate(spec, binary, sum_, size, Path(out.name).read_bytes())


def _gunzip_digest(gz_path: Path, dest: BinaryIO) -> tuple[str, int]:
    """Decompress a gzip file into dest, returning the gobuild sum and size of the content."""
    h = hashlib.sha256()
    size = 0
    try:
        with gzip.open(gz_path, "rb") as src:
            while chunk := src.read(1 << 20):
                h.update(chunk)
                dest.write(chunk)
                size += len(chunk)
    except (OSError, EOFError) as e:
        raise PeerMismatch(f"binary from verifier is not valid gzip: {e}") from e
    return sum_from_digest(h.digest()), size


_RESOURCE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.ENOMEM, errno.EMFILE, errno.ENFILE, errno.EAGAIN)


# The coordinator ----------------------------------------------------------------------------


@dataclass
class Job:
    """One build in this process, shared by every request for the same spec."""

    spec: BuildSpec
    log_path: Path
    chain: tuple[str, ...] = ()  # instances a verification request came through
    initiator: str = ""  # the client address that started it
    created: float = field(default_factory=time.monotonic)
    state: JobState = JobState.QUEUED
    result: Result | None = None
    error: BuildError | None = None
    started: float | None = None
    finished: float | None = None  # time.monotonic() when done was set
    done: threading.Event = field(default_factory=threading.Event)

    def open_log(self) -> BinaryIO | None:
        """The live log opened for reading from its start, or None once the job ended and removed it.

        The file exists from the job's creation until after done is set, and only grows: a reader
        that opened it reads everything the build wrote; one that gets None finds the log in the
        stored result (its first bytes; later notes may be missing) or the error in the job.
        """
        try:
            return open(self.log_path, "rb")
        except FileNotFoundError:
            return None

    def wait(self, timeout: float | None = None) -> Result:
        """Block until the build ends; return its result or raise its error."""
        if not self.done.wait(timeout):
            raise TemporaryFailure("still building, try again later")
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


class Coordinator:
    """Coalesces requests per spec and runs at most max_builds builds at once, FIFO.

    A queued job is only an entry in the queue; a thread is started when it gets a build slot, so
    threads = builds running + builds waiting for their verifiers, however many are queued.
    """

    def __init__(self, builder: Builder, max_builds: int, max_queued: int = 1000,
                 observer: BuildObserver | None = None, admit: Callable[[], None] = lambda: None,
                 remote_position: Callable[[BuildSpec], int] = lambda spec: 0) -> None:
        self.builder = builder
        self.admit = admit  # raises (a BuildError) when no new build can start now, e.g. the queue is down
        self.remote_position = remote_position  # a running job's place in the build queue (0: a worker has it)
        self.observer = observer
        self.closed = False  # shutting down: no new jobs
        self.max_builds = max_builds
        self.max_queued = max_queued  # past it a new build is refused for now (Busy: 503, Retry-After)
        self.jobs_dir = builder.store.root / "jobs"
        self.jobs_dir.mkdir(exist_ok=True)
        self._jobs: dict[tuple[BuildSpec, tuple[str, ...]], Job] = {}
        self._queue: deque[Job] = deque()
        self._running = 0
        self._cond = threading.Condition()
        self._serial = itertools.count()
        self._finished: deque[Job] = deque(maxlen=64)  # recently ended jobs, for late readers
        self._remove_stale_logs()

    def _remove_stale_logs(self) -> None:
        """Delete live logs that processes no longer running left behind (killed mid-build)."""
        for path in self.jobs_dir.glob("*.log"):
            parts = path.stem.split("-")
            if len(parts) != 3 or not parts[1].isdigit() or not process_alive(int(parts[1])):
                path.unlink(missing_ok=True)

    def start(self, spec: BuildSpec, chain: tuple[str, ...] = (), initiator: str = "") -> Job:
        """The job for spec: joined if one runs, else started.

        A verification request from a peer (non-empty chain) gets its own job: it must not wait
        on our verifiers, which may be waiting on that very peer.
        """
        with self._cond:
            if (job := self._jobs.get((spec, chain))) is not None:
                return job
        self.admit()  # outside the lock: it may wait on the network
        with self._cond:
            job = self._jobs.get((spec, chain))
            if job is None:
                if self.closed:
                    raise TemporaryFailure("the server is shutting down, try again in a minute")
                if len(self._queue) >= self.max_queued:
                    raise Busy(f"{len(self._queue)} builds are queued already, try again later", retry_after=60)
                key = hashlib.sha256(f"{spec} {','.join(chain)}".encode()).hexdigest()
                # Unique per job: a reader of an ended job can never open its successor's log.
                job = Job(spec, self.jobs_dir / f"{key}-{os.getpid()}-{next(self._serial)}.log", chain, initiator)
                job.log_path.touch()  # readers may open it while the job still waits in the queue
                self._jobs[(spec, chain)] = job
                self._queue.append(job)
                self._dispatch()
            return job

    def built(self, spec: BuildSpec, timeout: float, chain: tuple[str, ...] = (), initiator: str = "") -> Result:
        """The logged result of spec, building it (or joining its build) if there is none."""
        result = self.builder.store.result(spec)
        if result is not None:
            return result
        return self.start(spec, chain, initiator).wait(timeout)

    def jobs(self) -> list[Job]:
        """The jobs queued or running now, oldest first."""
        with self._cond:
            return sorted(self._jobs.values(), key=lambda job: job.created)

    def counts(self) -> tuple[int, int]:
        """(queued, compiling) jobs."""
        with self._cond:
            return len(self._queue), self._running

    def shutdown(self, timeout: float, compiling_only: bool = False) -> bool:
        """Start no more jobs; wait up to timeout for the started ones (or only those compiling, which
        write to the store; a job waiting on verifiers writes nothing before they agree); whether they ended."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self.closed = True
            while self._queue:  # never started, so no thread of its own: ended here
                job = self._queue.popleft()
                job.error = TemporaryFailure("the server is shutting down, try again in a minute")
                self._end(job)
            self._cond.notify_all()
            return self._cond.wait_for(
                lambda: not any(job.state == JobState.RUNNING or not compiling_only for job in self._jobs.values()),
                max(0.0, deadline - time.monotonic()))

    def get(self, spec: BuildSpec) -> Job | None:
        """The job running or queued for spec, if any."""
        with self._cond:
            return self._jobs.get((spec, ()))

    def last(self, spec: BuildSpec, max_age: float = 600.0) -> Job | None:
        """The job running or queued for spec, else the one that ended within max_age seconds."""
        with self._cond:
            if (job := self._jobs.get((spec, ()))) is not None:
                return job
            for job in reversed(self._finished):
                if job.spec == spec and not job.chain and job.finished is not None:
                    return job if time.monotonic() - job.finished <= max_age else None
            return None

    def queue_position(self, job: Job) -> int:
        """0 while building, else 1 + the number of jobs queued before it (here, or on the build queue)."""
        with self._cond:
            if job in self._queue:
                return self._queue.index(job) + 1
            if job.state != JobState.RUNNING:
                return 0
        return self.remote_position(job.spec)

    def _dispatch(self) -> None:
        """Start the jobs at the head of the queue while build slots are free (self._cond held)."""
        while self._queue and self._running < self.max_builds and not self.closed:
            job = self._queue.popleft()
            self._running += 1
            job.state, job.started = JobState.RUNNING, time.monotonic()
            threading.Thread(target=self._run, args=(job,), name=f"build {job.spec}", daemon=True).start()
        self._cond.notify_all()

    def _run(self, job: Job) -> None:
        assert job.started is not None
        if self.observer is not None:
            self.observer.build_started(job.spec, job.started - job.created)
        try:
            with open(job.log_path, "w+b") as out:
                job.result = self.builder.build(job.spec, out, job.chain, lambda: self._release(job))
        except BuildError as e:
            log.warning("build of %s failed (%s): %s", job.spec, e.code, e)
            job.error = e
        except OSError as e:
            if e.errno not in _RESOURCE_ERRNOS:
                log.exception("build of %s crashed", job.spec)
            job.error = TemporaryFailure(f"build failed, temporary: {e}")  # our disk or memory: try again later
        except Exception as e:  # a bug or I/O error: answer 500, keep the server alive
            log.exception("build of %s crashed", job.spec)
            job.error = BuildError(f"internal error: {e}")
        finally:
            self._release(job)
            if self.observer is not None:
                self.observer.build_ended(job.spec, time.monotonic() - job.started, job.error)
            with self._cond:
                self._end(job)

    def _end(self, job: Job) -> None:
        """Mark job done and forget it (the condition is held)."""
        job.state, job.finished = JobState.DONE, time.monotonic()
        del self._jobs[(job.spec, job.chain)]
        self._finished.append(job)
        self._cond.notify_all()
        job.done.set()
        job.log_path.unlink(missing_ok=True)  # after done: see Job.open_log

    def _release(self, job: Job) -> None:
        """Give the job's build slot back once: waiting for verifiers needs no CPU."""
        with self._cond:
            if job.state == JobState.RUNNING:
                job.state = JobState.VERIFYING
                self._running -= 1
                self._dispatch()
