"""The coordinator's side of the build queue (RQ on Redis): one job per spec, its live log, its outcome.

Every front door derives the same RQ job id from the spec and enqueues under a Redis lock, so any
number of requests on any number of coordinators make one job. A worker streams the log into a
Redis stream (gobuild.logstream) that the waiting coordinator copies into the job's log file, which
the live endpoints tail as for an in-process build (same bytes, same offsets). The binary comes
back over HTTP (web/upload.py), is hashed here and stored as a candidate; the Builder then asks the
verifiers, appends to the log and publishes, as for a local build.

What is trusted: a worker's sum never (only the bytes that arrived count), but its failure is: a
"failure" outcome in Redis is stored as the spec's permanent failure as reported, and its errors are
answered as they say. Redis and the workers can so deny a build (Retry builds it again), never log one.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

import redis
from rq import Queue, Retry, Worker
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job as RQJob
from rq.job import JobStatus
from rq.results import Result as RQResult

from . import queueproto
from .compiler import CompileFailure
from .failures import BuildError, Busy, NotFound, QueueUnreachable, TemporaryFailure, UserError
from .logstream import LogStream
from .spec import BuildSpec
from .store import Result, Store, now_text

log = logging.getLogger(__name__)

UNREACHABLE = ("the build queue is unreachable, so no new build can start now (built results are still "
               "served); try again in a minute")
ACTIVE = {JobStatus.CREATED, JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED}
FOLLOW_BLOCK_MS = 250  # a waiting coordinator looks at the job's status at least this often
RETRIES = 3  # times RQ takes a job up again after its worker died (or it raised)
TTL_GRACE = 60  # seconds a job outlives its followers' deadline in Redis: they give it up, with a clear message
RESULT_TTL = 3600  # seconds RQ keeps an ended job for front doors still following it
ROUTES_SECONDS = 5.0  # how long which Go versions have their own workers is remembered
ERRORS: dict[str, type[BuildError]] = {"not-found": NotFound, "unprocessable": UserError}


@dataclass(frozen=True)
class WorkerView:
    """A queue worker as the admin page lists it."""

    name: str
    hostname: str
    pid: int | None
    state: str
    queues: str
    building: str  # the spec of its current job, "" when idle
    last_heartbeat: str


class BuildQueue:
    """Enqueues builds for queue workers and waits for them (Builder's remote compiler)."""

    def __init__(self, conn: redis.Redis, store: Store, upload_url: str, job_timeout: float,
                 wait_seconds: int = 900, on_alarm: Callable[[BuildSpec], None] = lambda spec: None,
                 max_queued: int = 1000) -> None:
        self.conn = conn
        self.max_queued = max_queued  # past it a new build is refused for now (Busy: 503, Retry-After)
        self.store = store
        self.upload_url = upload_url
        self.job_timeout = int(job_timeout)
        self.wait_seconds = wait_seconds  # a build no worker took (and finished) in this + job_timeout: given up
        self.on_alarm = on_alarm
        self._routes: tuple[float, set[str]] = (0.0, set())

    def check_available(self) -> None:
        """Raise TemporaryFailure (503) when Redis does not answer, Busy when max_queued builds wait already."""
        with _reaching("counting waiting builds"):
            waiting = sum(Queue(name, connection=self.conn).count for name in self._queues())
        if waiting >= self.max_queued:
            raise Busy(f"{waiting} builds wait for a worker already, try again later", retry_after=60)

    def build(self, spec: BuildSpec, out: BinaryIO) -> Result:
        """Have a worker build spec (joining its job if one is queued or running); the candidate it uploaded.

        Raises CompileFailure for a build that failed for good (the Builder stores it), BuildError else.
        """
        def arrived() -> Result | None:
            return self.store.result(spec) or self.store.candidate(spec)

        with _reaching(f"building {spec}"):
            job = self._job(spec)
            self._follow(job, out, lambda: arrived() is not None)
            if (found := arrived()) is not None:  # the upload is in: no need to wait for RQ to mark the job
                return found
            outcome = _outcome(job)
        raise self._error(spec, outcome)

    def position(self, spec: BuildSpec) -> int:
        """1 + the jobs before spec's on its queue while no worker has it, else 0 (also when Redis is down)."""
        try:
            job = RQJob.fetch(queueproto.job_id(spec), connection=self.conn, serializer=queueproto.SERIALIZER)
            place = job.get_position()
        except (NoSuchJobError, redis.RedisError):  # not logged: every status poll asks
            return 0
        return 0 if place is None else place + 1

    def log_of(self, spec: BuildSpec) -> bytes:
        """The live log of spec's job so far."""
        with _reaching("reading a job's log"):
            return LogStream(self.conn, queueproto.log_key(queueproto.job_id(spec))).whole()

    def note(self, spec: BuildSpec, text: str) -> None:
        """Add a line of the coordinator's to the live log of spec's job."""
        with _reaching("adding to a job's log"):
            LogStream(self.conn, queueproto.log_key(queueproto.job_id(spec))).append(text.encode())

    def _job(self, spec: BuildSpec) -> RQJob:
        """The active job of spec, enqueued now if there is none (atomically across front doors)."""
        job_id = queueproto.job_id(spec)
        with self._enqueue_lock(job_id):
            try:
                job = RQJob.fetch(job_id, connection=self.conn, serializer=queueproto.SERIALIZER)
                if job.get_status() in ACTIVE:
                    return job
                job.delete()  # an ended job: this is a new build of the spec
            except NoSuchJobError:
                pass
            stream = LogStream(self.conn, queueproto.log_key(job_id))
            stream.delete()  # a new job's log starts at offset 0
            queue = Queue(self._queue_name(spec), connection=self.conn, serializer=queueproto.SERIALIZER)
            stream.append(f"queued for a worker (queue {queue.name})\n".encode())
            return queue.enqueue(queueproto.WORKER_FUNCTION, str(spec), self.upload_url, queueproto.new_token(),
                                 job_id=job_id, job_timeout=self.job_timeout, result_ttl=RESULT_TTL,
                                 failure_ttl=RESULT_TTL, ttl=self.wait_seconds + self.job_timeout + TTL_GRACE,
                                 retry=Retry(max=RETRIES), description=str(spec))

    def _enqueue_lock(self, job_id: str) -> Any:
        """The Redis lock under which front doors enqueue, move or give up a spec's job."""
        return self.conn.lock(f"gobuild:enqueue:{job_id}", timeout=30, blocking_timeout=30)

    def _queues(self) -> set[str]:
        """The queues live workers take from, and the general queue (remembered for ROUTES_SECONDS)."""
        when, routed = self._routes
        if time.monotonic() - when > ROUTES_SECONDS:
            workers = Worker.all(connection=self.conn, serializer=queueproto.SERIALIZER)
            routed = {queueproto.GENERAL_QUEUE} | {q for w in workers for q in w.queue_names()}
            self._routes = (time.monotonic(), routed)
        return routed

    def _queue_name(self, spec: BuildSpec) -> str:
        """The queue of the workers limited to spec's Go version if any runs, else the general queue."""
        name = queueproto.queue_for_goversion(spec.goversion)
        return name if name in self._queues() else queueproto.GENERAL_QUEUE

    def _follow(self, job: RQJob, out: BinaryIO, uploaded: Callable[[], bool]) -> None:
        """Copy the job's log stream into out until the job ends or its binary arrived (the upload's note
        wakes the read); out then holds the same bytes as the stream."""
        stream = LogStream(self.conn, queueproto.log_key(job.id))
        after = "0-0"
        deadline = time.monotonic() + self.wait_seconds + self.job_timeout
        while True:
            # Before reading: what the worker wrote before ending is read.
            ended = uploaded() or (status := _status(job)) not in ACTIVE
            if not ended:
                self._keep_going(job, status, deadline)
            data, after = stream.read(after, block_ms=None if ended else FOLLOW_BLOCK_MS)
            while data:
                out.write(data)
                data, after = stream.read(after) if ended else (b"", after)
            out.flush()
            if ended:
                return

    def _keep_going(self, job: RQJob, status: JobStatus | None, deadline: float) -> None:
        """Give the job up past its deadline (TemporaryFailure); move it to the general queue when it waits
        on a Go version's queue no live worker takes from (that worker left: it would wait forever)."""
        if time.monotonic() > deadline:
            self._give_up(job)
            what = "took" if status in (JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED) else "finished"
            raise TemporaryFailure(f"no worker {what} the build in {self.wait_seconds + self.job_timeout} s; "
                                   "try again later")
        if status == JobStatus.QUEUED and job.origin != queueproto.GENERAL_QUEUE and job.origin not in self._queues():
            self._reroute(job)

    def _give_up(self, job: RQJob) -> None:
        """Delete the job unless another front door replaced it meanwhile: the next request enqueues anew."""
        with self._enqueue_lock(job.id):
            current = self._fetch(job.id)
            if current is not None and list(current.args) == list(job.args):  # this run (its token), not a newer one
                current.delete()

    def _fetch(self, job_id: str) -> RQJob | None:
        try:
            return RQJob.fetch(job_id, connection=self.conn, serializer=queueproto.SERIALIZER)
        except NoSuchJobError:
            return None

    def _reroute(self, job: RQJob) -> None:
        """Move a job still queued from its Go version's queue to the general one."""
        with self._enqueue_lock(job.id):
            current = self._fetch(job.id)
            if current is None:
                return
            origin = Queue(current.origin, connection=self.conn, serializer=queueproto.SERIALIZER)
            if current.get_status() != JobStatus.QUEUED or origin.remove(job.id) == 0:
                return  # taken meanwhile, or moved by another front door
            Queue(queueproto.GENERAL_QUEUE, connection=self.conn, serializer=queueproto.SERIALIZER).enqueue_job(current)
        job.origin = current.origin
        log.warning("no worker takes %s any more: %s moved to the general queue", origin.name, job.id)
        LogStream(self.conn, queueproto.log_key(job.id)).append(
            f"no worker takes from {origin.name} any more: moved to the general queue\n".encode())

    def _error(self, spec: BuildSpec, outcome: dict[str, Any]) -> Exception:
        """The error a job's outcome says (its upload never arrived: that would be a success)."""
        kind = outcome.get("outcome")
        if kind == "failure":
            return CompileFailure(str(outcome.get("reason", ""))[:200], str(outcome.get("error", ""))[:2000],
                                  str(outcome.get("output", ""))[-queueproto.MAX_OUTPUT:])
        if kind == "error":
            error = ERRORS.get(str(outcome.get("code")), TemporaryFailure)
            return error(str(outcome.get("message", "the worker failed"))[:2000])
        if kind == "uploaded":
            if any(a["spec"] == str(spec) for a in self.alarms()):
                return TemporaryFailure("two workers built different bytes for this build (a reproducibility "
                                        "alarm): nothing was logged")
            return TemporaryFailure("the worker said it uploaded the binary, but it never arrived")
        return TemporaryFailure(str(outcome.get("message", "the worker gave no outcome"))[:2000])

    # Reproducibility alarms ---------------------------------------------------------------------

    def alarm(self, spec: BuildSpec, first: str, second: str) -> None:
        """Two builds of spec gave different sums: remember it (shown on the admin page) and count it."""
        log.error("reproducibility alarm: %s built as %s and as %s", spec, first, second)
        entry = {"spec": str(spec), "first": first, "second": second,
                 "when": now_text()}
        self.on_alarm(spec)  # counted even when Redis cannot keep it for the admin page
        with _reaching("keeping an alarm"):
            self.conn.lpush(queueproto.ALARMS_KEY, json.dumps(entry))
            self.conn.ltrim(queueproto.ALARMS_KEY, 0, 999)

    def alarms(self) -> list[dict[str, str]]:
        """The reproducibility alarms, newest first."""
        with _reaching("reading alarms"):
            raw: Any = self.conn.lrange(queueproto.ALARMS_KEY, 0, 999)
        return [json.loads(item) for item in raw]

    # What the upload endpoint and the admin page ask --------------------------------------------

    def running(self, job_id: str) -> tuple[str, str] | None:
        """The spec and run token of a job a worker runs now, None if no such job runs (its upload is refused)."""
        with _reaching("looking up a running job"):
            job = self._fetch(job_id)
            if job is None or job.get_status() != JobStatus.STARTED or len(job.args) != 3:
                return None
            return str(job.args[0]), str(job.args[2])

    def workers(self) -> list[WorkerView]:
        """The live workers and what each builds."""
        views = []
        with _reaching("listing workers"):
            for w in Worker.all(connection=self.conn, serializer=queueproto.SERIALIZER):
                job = w.get_current_job()
                building = str(job.args[0]) if job is not None and job.args else ""
                views.append(WorkerView(w.name, w.hostname or "", w.pid, str(w.get_state()), ",".join(w.queue_names()),
                                        building, w.last_heartbeat.strftime("%H:%M:%S") if w.last_heartbeat else ""))
        return views


@contextmanager
def _reaching(what: str) -> Iterator[None]:
    """Turn Redis errors while doing what into QueueUnreachable: callers never need redis' own exceptions."""
    try:
        yield
    except redis.RedisError as e:
        log.warning("build queue unreachable while %s: %s", what, e)
        raise QueueUnreachable(UNREACHABLE, str(e)) from e


def _status(job: RQJob) -> JobStatus | None:
    """The job's status, None once its hash is gone (deleted by another front door, or expired).

    A RedisError is raised: an unreachable queue is a temporary failure, not the job's end."""
    try:
        return job.get_status()
    except (InvalidJobOperation, NoSuchJobError):
        return None


def _outcome(job: RQJob) -> dict[str, Any]:
    """What the job's last run returned, or why it failed."""
    result: RQResult | None = job.latest_result()
    if result is None:
        return {"outcome": "error", "message": "the build's job disappeared from the queue"}
    if result.type != RQResult.Type.SUCCESSFUL:
        last = (result.exc_string or "").strip().splitlines()[-1:] or ["unknown error"]
        return {"outcome": "error", "message": f"the worker failed: {last[0]}"}
    value = result.return_value
    return value if isinstance(value, dict) else {"outcome": "error", "message": "the worker gave no outcome"}
