"""The build job (download, main-package check, compile, hash, store) and the coordinator that runs jobs."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, Callable

from filelock import FileLock

from . import gocmd
from .failures import BuildError, NotFound, PermanentFailure, TemporaryFailure, UserError, classify, is_temporary
from .packages import main_packages, package_name, uses_cgo
from .spec import BuildSpec, Record
from .store import Failure, Result, Store, digest_file
from .toolchains import Toolchain, Toolchains

log = logging.getLogger(__name__)

# Appends a successful build's record to the transparency log; returns its record number.
RecordAppender = Callable[[Record], int]


@dataclass(frozen=True)
class BuildSettings:
    """What a build needs to know from the configuration."""

    goproxy: str  # GOPROXY for go commands, 'direct' already dropped
    environment: tuple[str, ...] = ()
    build_timeout: float = 900.0
    prepare_timeout: float = 300.0


def reproduce_command(spec: BuildSpec, goproxy: str) -> str:
    """The shell command that builds the same bytes without gobuild."""
    ld = "-buildid= -s" if spec.stripped else "-buildid="
    return (f"GOPROXY={goproxy} CGO_ENABLED=0 GOOS={spec.goos} GOARCH={spec.goarch} "
            f"GOTOOLCHAIN={spec.goversion} go install -trimpath -ldflags='{ld}' -- {spec.package}@{spec.version}")


class Builder:
    """Builds one spec from start to stored result, synchronously."""

    def __init__(self, settings: BuildSettings, store: Store, toolchains: Toolchains, cache_dir: Path,
                 append_record: RecordAppender | None = None) -> None:
        self.settings = settings
        self.store = store
        self.toolchains = toolchains
        self.paths = gocmd.GoPaths(store.root, cache_dir)
        self.append_record = append_record
        self.locks = store.root / "locks"
        self.locks.mkdir(exist_ok=True)

    def build(self, spec: BuildSpec, out: BinaryIO) -> Result:
        """Build spec unless another process already did; raise a BuildError on failure."""
        key = hashlib.sha256(str(spec).encode()).hexdigest()
        with FileLock(str(self.locks / f"{key}.lock")):
            if (done := self.store.result(spec)) is not None:
                return self._recorded(spec, done)
            if (failed := self.store.failure(spec)) is not None:
                raise PermanentFailure(failed.reason, failed.error)
            return self._build(spec, out)

    def _build(self, spec: BuildSpec, out: BinaryIO) -> Result:
        toolchain = self.toolchains.get(spec.goversion)
        with gocmd.command_home(self.paths, "build") as home:
            try:
                moddir = self.download_module(toolchain, home, spec.module, spec.version, out)
            except _Unbuildable as e:
                raise self._store_failure(spec, e.reason, "go mod download failed", e.output) from e
            check_main_package(spec, moddir)
            binary = self._compile(spec, toolchain, home, moddir, out)
            return self._store(spec, binary, out)

    def _env(self, toolchain: Toolchain, home: Path, target: tuple[str, str] | None = None) -> dict[str, str]:
        return gocmd.environment(self.paths, home, toolchain.goversion, self.settings.goproxy,
                                 self.settings.environment, target)

    def download_module(self, toolchain: Toolchain, home: Path, module: str, version: str,
                        out: BinaryIO | None = None) -> Path:
        """Fetch module@version into the shared module cache; return its source directory."""
        argv = [str(toolchain.go), "mod", "download", "-json", "--", f"{module}@{version}"]
        _note(out, f"$ go mod download -json -- {module}@{version}\n")
        try:
            output = gocmd.run(argv, self._env(toolchain, home), home, self.settings.prepare_timeout)
        except gocmd.GoTimeout as e:
            raise TemporaryFailure(f"downloading {module}@{version}: timed out") from e
        except gocmd.GoCommandError as e:
            output = e.output  # still holds the JSON with the reason in its Error field
        info = _parse_download_json(output)
        if info.get("Error") or not info.get("Dir"):
            raise _download_error(module, version, info.get("Error") or output)
        return Path(info["Dir"])

    def main_packages(self, module: str, version: str) -> list[str]:
        """The main package dirs of module@version, read from its source with the newest toolchain."""
        toolchain = self.toolchains.get(self.toolchains.latest())
        with gocmd.command_home(self.paths, "listpkgs") as home:
            try:
                return main_packages(self.download_module(toolchain, home, module, version))
            except _Unbuildable as e:
                raise UserError(f"{module}@{version} cannot be built ({e.reason}): {_last_line(e.output)}") from e

    def _compile(self, spec: BuildSpec, toolchain: Toolchain, home: Path, moddir: Path, out: BinaryIO) -> Path:
        """Run go install; return the path of the binary it wrote."""
        ld = "-ldflags=-buildid= -s" if spec.stripped else "-ldflags=-buildid="
        argv = [str(toolchain.go), "install", "-x", "-v", "-trimpath", ld, "--", f"{spec.package}@{spec.version}"]
        env = self._env(toolchain, home, (spec.goos, spec.goarch))
        _note(out, f"$ {reproduce_command(spec, self.settings.goproxy)}\n")
        try:
            gocmd.run(argv, env, home, self.settings.build_timeout, out)
        except gocmd.GoTimeout as e:
            raise TemporaryFailure(f"build timed out after {self.settings.build_timeout:g}s") from e
        except gocmd.GoCommandError as e:
            if is_temporary(e.output):
                raise TemporaryFailure(f"build failed, temporary: {_last_line(e.output)}") from e
            reason = classify(e.output)
            if reason == "build constraint excludes all go files" and uses_cgo(moddir / spec.dir.lstrip("/")):
                reason = "cgo"
            raise self._store_failure(spec, reason, str(e), e.output) from e
        bindir = home / "go" / "bin"
        for candidate in (bindir / f"{spec.goos}_{spec.goarch}" / spec.exec_name, bindir / spec.exec_name):
            if candidate.is_file():
                return candidate
        raise TemporaryFailure(f"go install succeeded but wrote no {spec.exec_name}")

    def _store_failure(self, spec: BuildSpec, reason: str, error: str, output: str) -> PermanentFailure:
        message = f"build failed ({reason}): {error}"
        logblob = self.store.put_blob(f"{error}\n\n{output}".encode())
        self.store.put_failure(Failure(str(spec), reason, message, logblob, _now()))
        if reason == "unknown":
            log.error("build of %s failed for an unknown reason", spec)
        return PermanentFailure(reason, message)

    def _store(self, spec: BuildSpec, binary: Path, out: BinaryIO) -> Result:
        """Hash and store the binary (blobs first), log it, then publish the result."""
        sum_, size = digest_file(binary)
        with open(binary, "rb") as f:
            bin_blob, _ = self.store.put_blob_file(f)
            f.seek(0)
            gz_blob, size_gz = self.store.put_blob_gzip(f)
        _note(out, f"\nbuilt {spec.exec_name}: {size} bytes, sum {sum_}\n")
        out.flush()
        log_blob = self.store.put_blob(Path(out.name).read_bytes()) if hasattr(out, "name") else self.store.put_blob(b"")
        result = Result(str(spec), sum_, size, size_gz, bin_blob, gz_blob, log_blob, _now())
        self.store.put_result(result)
        return self._recorded(spec, result)

    def _recorded(self, spec: BuildSpec, result: Result) -> Result:
        """Append the result's record to the transparency log unless it is there already.

        The result is stored first and its record number after, so a crash in between leaves a
        result without a number (appended on its next request), never a record logged twice.
        """
        if result.record_number is not None or self.append_record is None:
            return result
        number = self.append_record(Record(spec, result.size, result.sum))
        result = replace(result, record_number=number)
        self.store.put_result(result)
        return result


def check_main_package(spec: BuildSpec, moddir: Path) -> None:
    """Refuse to build what would not give a binary: a missing or non-main package."""
    name = package_name(moddir / spec.dir.lstrip("/"))
    if name is None:
        raise NotFound(f"package {spec.package} does not exist in {spec.module}@{spec.version}")
    if name != "main":
        raise UserError(f"package main does not exist, building would not result in executable binary "
                        f"(package {name})")


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


def _download_error(module: str, version: str, text: str) -> Exception:
    """Tell a module or version that does not exist from a proxy that failed."""
    text = text.strip()
    if (reason := classify(text)) != "unknown":
        return _Unbuildable(reason, text)
    if is_temporary(text):
        return TemporaryFailure(f"downloading {module}@{version}: {_last_line(text)}")
    if any(s in text for s in ("404 Not Found", "410 Gone", "unknown revision", "invalid version", "not found")):
        return NotFound(f"downloading {module}@{version}: {_last_line(text)}")
    if "malformed module path" in text or "invalid" in text:
        return UserError(f"downloading {module}@{version}: {_last_line(text)}")
    return TemporaryFailure(f"downloading {module}@{version}: {_last_line(text)}")


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else text


def _note(out: BinaryIO | None, text: str) -> None:
    if out is not None:
        out.write(text.encode())
        out.flush()


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# The coordinator ----------------------------------------------------------------------------


@dataclass
class Job:
    """One build in this process, shared by every request for the same spec."""

    spec: BuildSpec
    log_path: Path
    state: str = "queued"  # queued, running, done
    result: Result | None = None
    error: BuildError | None = None
    started: float | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def wait(self, timeout: float | None = None) -> Result:
        """Block until the build ends; return its result or raise its error."""
        if not self.done.wait(timeout):
            raise TemporaryFailure("still building, try again later")
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


class Coordinator:
    """Coalesces requests per spec and runs at most max_builds builds at once, FIFO."""

    def __init__(self, builder: Builder, max_builds: int) -> None:
        self.builder = builder
        self.max_builds = max_builds
        self.jobs_dir = builder.store.root / "jobs"
        self.jobs_dir.mkdir(exist_ok=True)
        self._jobs: dict[BuildSpec, Job] = {}
        self._queue: deque[Job] = deque()
        self._running = 0
        self._cond = threading.Condition()

    def start(self, spec: BuildSpec) -> Job:
        """The job for spec: joined if one runs, else started."""
        with self._cond:
            job = self._jobs.get(spec)
            if job is None:
                key = hashlib.sha256(str(spec).encode()).hexdigest()
                job = Job(spec, self.jobs_dir / f"{key}.log")
                self._jobs[spec] = job
                self._queue.append(job)
                threading.Thread(target=self._run, args=(job,), name=f"build {spec}", daemon=True).start()
            return job

    def built(self, spec: BuildSpec, timeout: float) -> Result:
        """The logged result of spec, building it (or joining its build) if there is none."""
        result = self.builder.store.result(spec)
        if result is not None and (result.record_number is not None or self.builder.append_record is None):
            return result
        return self.start(spec).wait(timeout)

    def get(self, spec: BuildSpec) -> Job | None:
        """The job running or queued for spec, if any."""
        with self._cond:
            return self._jobs.get(spec)

    def queue_position(self, job: Job) -> int:
        """0 while building, else 1 + the number of jobs queued before it."""
        with self._cond:
            try:
                return self._queue.index(job) + 1
            except ValueError:
                return 0

    def _run(self, job: Job) -> None:
        with self._cond:
            while self._queue[0] is not job or self._running >= self.max_builds:
                self._cond.wait()
            self._queue.popleft()
            self._running += 1
            job.state, job.started = "running", time.monotonic()
            self._cond.notify_all()
        try:
            with open(job.log_path, "w+b") as out:
                job.result = self.builder.build(job.spec, out)
        except BuildError as e:
            job.error = e
        except Exception as e:  # a bug or I/O error: answer 500, keep the server alive
            log.exception("build of %s crashed", job.spec)
            job.error = BuildError(f"internal error: {e}")
        finally:
            with self._cond:
                self._running -= 1
                job.state = "done"
                del self._jobs[job.spec]
                self._cond.notify_all()
            job.done.set()
            job.log_path.unlink(missing_ok=True)
