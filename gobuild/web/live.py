"""Live build progress for the browser: server-sent events and a polling fragment, both tailing the job's log."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import htmx_flask as htmx
from flask import Response, redirect, render_template, request, stream_with_context
from markupsafe import Markup, escape
from werkzeug.wrappers import Response as BaseResponse

from .. import urls
from ..builds import Job
from ..phases import NO_PROGRESS, Progress, ProgressReader
from ..spec import BuildSpec
from ..states import BuildState, JobState
from ..store import Result, Store
from . import admission
from .checkpoints import START, Checkpoint, LogCheckpoints
from .current import services
from .logview import LogFolder

KEEPALIVE_SECONDS = 15.0  # a comment this often keeps proxies from closing a quiet stream
TAIL_SECONDS = 0.25  # how often a stream looks for new log bytes
CHUNK = 64 * 1024  # most log bytes in one event
PAGE_LOG_LIMIT = 1 << 20  # most log bytes rendered into a page; the stream sends the rest
CHECKPOINT_SPACING = 256 * 1024  # a stream leaves a checkpoint this often: a reconnect reads at most about this again


class StreamLimit:
    """Counts open event streams: each holds a server thread, so past the limit pages poll instead."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open = 0
        self._lock = threading.Lock()

    def acquire(self) -> bool:
        """Take a slot; False when all are taken."""
        with self._lock:
            if self._open >= self.limit:
                return False
            self._open += 1
            return True

    def release(self) -> None:
        """Give a slot back (the stream ended or its client went away)."""
        with self._lock:
            self._open -= 1

    @property
    def open(self) -> int:
        """Streams open now."""
        with self._lock:
            return self._open

    @property
    def full(self) -> bool:
        """Whether a new stream would be refused now."""
        with self._lock:
            return self._open >= self.limit


class LogTail:
    """Reads a build log in whole lines from a byte offset: the job's live file, else the stored log.

    Offsets count bytes of the log file, which the stored log of a success repeats byte for byte,
    so an offset taken while the build ran still points at the same line after it ended.
    """

    def __init__(self, offset: int, file: BinaryIO | None = None, stored: bytes = b"") -> None:
        self.offset = offset
        self._file = file
        self._stored = stored

    @classmethod
    def of_job(cls, job: Job, store: Store, offset: int) -> LogTail:
        """The job's log: its live file, or once that is gone, the stored log of its result."""
        file = job.open_log()
        if file is not None:
            return cls(offset, file)
        # open_log() gives None only after done is set, so result and error are final here.
        return cls(offset, stored=store.read_blob(job.result.log) if job.result is not None else b"")

    @property
    def live(self) -> bool:
        """Whether this reads the job's live file (which only grows), not the stored log."""
        return self._file is not None

    def read(self, whole_lines: bool = True) -> bytes:
        """The next bytes (at most CHUNK), ending after a newline unless whole_lines is False."""
        if self._file is not None:
            self._file.seek(self.offset)
            data = self._file.read(CHUNK)
        else:
            data = self._stored[self.offset:self.offset + CHUNK]
        if whole_lines:
            cut = data.rfind(b"\n") + 1
            if cut:
                data = data[:cut]
            elif len(data) < CHUNK:  # a line longer than CHUNK goes in pieces rather than never
                data = b""
        self.offset += len(data)
        return data

    def read_until(self, end: int) -> bytes:
        """The bytes from here up to offset end (fewer if the log is shorter)."""
        parts = []
        while self.offset < end and (data := self.read(whole_lines=False)):
            parts.append(data[:end - self.offset + len(data)])
            self.offset = min(self.offset, end)
        return b"".join(parts)

    def read_all(self, limit: int, whole_lines: bool = True) -> bytes:
        """Everything available now, up to about limit bytes."""
        parts = []
        total = 0
        while total < limit and (data := self.read(whole_lines)):
            parts.append(data)
            total += len(data)
        return b"".join(parts)

    def close(self) -> None:
        """Close the live file, if open."""
        if self._file is not None:
            self._file.close()


@dataclass(frozen=True)
class Status:
    """What the status line of a build page says."""

    state: BuildState
    position: int = 0  # queued: 1 + jobs before it
    error: str = ""
    href: str = ""  # success: the result page
    stored: bool = False  # failed: a stored failure that Retry forgets
    progress: Progress = NO_PROGRESS  # running: the phase its log shows
    since: int | None = None  # queued or running: when the job was queued (Unix seconds)
    sum: str = ""  # success: the result's sum

    @classmethod
    def success(cls, spec: BuildSpec, sum_: str) -> Status:
        """A finished build, linking its result page."""
        return cls(BuildState.SUCCESS, href=urls.result_url(spec, sum_), sum=sum_)

    @property
    def busy(self) -> bool:
        """Whether the build is still going."""
        return self.state in (BuildState.QUEUED, BuildState.RUNNING, BuildState.VERIFYING)

    @property
    def started(self) -> float | None:
        """When the build (or its wait in the queue) began, for the elapsed time."""
        return self.progress.started if self.progress.started is not None else self.since

    @property
    def announcement(self) -> str:
        """What a screen reader is told when it changes: the state and phase, without counts."""
        if self.state == BuildState.QUEUED:
            return f"Waiting in the queue, position {self.position}"
        if self.state == BuildState.RUNNING:
            return f"Building: {self.progress.phase or 'starting'}"
        return {BuildState.PENDING: "Not built yet", BuildState.VERIFYING: "Built, asking the verifiers",
                BuildState.SUCCESS: "Build successful"}.get(self.state, "Build failed")

    @property
    def kind(self) -> str:
        """The original's update Kind for a final state."""
        return {BuildState.SUCCESS: "Success", BuildState.FAILED: "PermFailed"}.get(self.state, "TempFailed")


def status_of(job: Job | None, position: int = 0, progress: Progress = NO_PROGRESS) -> Status:
    """The status of a job (None: nothing runs), as the page and the events show it; progress: its log's."""
    if job is None:
        return Status(BuildState.PENDING)
    if not job.done.is_set():
        since = round(time.time() - (time.monotonic() - job.created))
        if position > 0:
            return Status(BuildState.QUEUED, position, since=since)
        state = BuildState.VERIFYING if job.state == JobState.VERIFYING else BuildState.RUNNING
        return Status(state, progress=progress, since=since)
    if job.result is not None:
        return Status.success(job.spec, job.result.sum)
    error = job.error
    if error is not None and error.status < 500:  # 4xx: the build cannot work as asked
        return Status(BuildState.FAILED, error=str(error), stored=getattr(error, "reason", None) is not None)
    return Status(BuildState.TEMPFAILED, error=str(error) if error is not None else "the build ended without a result")


def page_status(job: Job | None, position: int = 0, progress: Progress = NO_PROGRESS) -> Status:
    """A job's status as a page load (or a JSON status) shows it: a failure that was stored, and is gone from the
    store now, was retried: nothing is built yet. A failure never stored (it cannot work as asked) stays."""
    status = status_of(job, position, progress)
    return Status(BuildState.PENDING) if status.state == BuildState.FAILED and status.stored else status


def _sse(event: str, data: str, id_: int | None = None) -> str:
    """One server-sent event; data may hold newlines (a data: line each)."""
    head = f"event: {event}\n" + (f"id: {id_}\n" if id_ is not None else "")
    return head + "".join(f"data: {line}\n" for line in data.replace("\r", "").split("\n")) + "\n"


def update_event(payload: dict[str, object]) -> str:
    """The original's `update` event, byte for byte: {"Kind": ...} JSON without spaces."""
    return f"event: update\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n"


def _update_payload(status: Status) -> dict[str, object]:
    if status.state == BuildState.SUCCESS:
        return {"Kind": "Success", "Sum": status.sum}
    return {"Kind": status.kind, "Error": status.error}


def _log_event(html: Markup, offset: int) -> str:
    """Log lines as HTML, go's commands folded (the page appends them to a <pre>), with the offset after them as id."""
    return _sse("log", str(html), offset)


def _status_event(status: Status) -> str:
    return _sse("status", render_template("_status.html", status=status))


def _announce_event(status: Status) -> str:
    """The text of the page's aria-live region: sent only when it changes, so each change is read out once."""
    return _sse("announce", str(escape(status.announcement)))


class Reader:
    """Follows a job's log from an offset, with the progress and folding state of everything before it.

    That state is what reading the log from byte 0 in one piece gives. A reader starts from the
    nearest checkpoint at or before its offset instead, and leaves checkpoints for later readers.
    A checkpoint is the state reading from byte 0 gives just after a newline: where this reader's
    reads cut a line elsewhere (a line longer than a read), it folded the pieces as lines of their
    own, so the state at the next newline is worked out again from the last checkpoint.
    """

    def __init__(self, job: Job, store: Store, offset: int, checkpoints: LogCheckpoints) -> None:
        self.tail = LogTail.of_job(job, store, 0)
        self._job, self._checkpoints = job, checkpoints
        start = checkpoints.nearest(job, offset) if self.tail.live else START
        self.tail.offset = start.offset
        self.progress = ProgressReader(start.progress)
        self.folder = LogFolder(start.in_heredoc)
        self._mark = self._recorded = start  # the state at the last newline read, as from byte 0
        self._pending: list[bytes] = []  # the bytes read after it (a list: a long line comes in many reads)
        self._in_sync = True  # the folder's state was the mark's just after that newline
        self._take(self.tail.read_until(offset), render=False)
        self._remember()

    @property
    def offset(self) -> int:
        return self.tail.offset

    def read(self, whole_lines: bool = True, limit: int = CHUNK) -> tuple[bytes, Markup]:
        """The next bytes of the log (about limit at most) and their HTML."""
        data = self.tail.read_all(limit, whole_lines) if limit > CHUNK else self.tail.read(whole_lines)
        html = self._take(data)
        self._remember(CHECKPOINT_SPACING)
        return data, html

    def _take(self, data: bytes, render: bool = True) -> Markup:
        """Feed the next bytes to the progress and the folder; their HTML (as of one piece: cut after a newline),
        or nothing without render (what precedes the offset: only the state matters)."""
        self.progress.feed(data)
        cut = data.rfind(b"\n") + 1
        html = self._fold(data[:cut], render)
        if cut:
            self._mark_newline(data[:cut])
        if cut < len(data):
            self._pending.append(data[cut:])
        return html + self._fold(data[cut:], render)

    def _fold(self, data: bytes, render: bool) -> Markup:
        text = data.decode("utf-8", "replace")
        if render:
            return self.folder.render(text)
        self.folder.advance(text)
        return Markup("")

    def _mark_newline(self, lines: bytes) -> None:
        """Move the mark to the end of lines, just taken, with the fold state reading from byte 0 gives there."""
        in_heredoc = self.folder.in_heredoc
        if self._pending or not self._in_sync:  # the folder took a line in pieces since the mark
            exact = LogFolder(self._mark.in_heredoc)
            exact.advance((b"".join(self._pending) + lines).decode("utf-8", "replace"))
            in_heredoc = exact.in_heredoc
        self._in_sync = in_heredoc == self.folder.in_heredoc
        taken = sum(map(len, self._pending)) + len(lines)
        self._mark = Checkpoint(self._mark.offset + taken, self.progress.progress, in_heredoc)
        self._pending = []

    def _remember(self, spacing: int = 1) -> None:
        """Leave the mark as a checkpoint for later readers, if spacing bytes past the last one left."""
        if (self.tail.live and self._mark.offset - self._recorded.offset >= spacing
                and not self._job.done.is_set()):
            self._checkpoints.record(self._job, self._mark)
            self._recorded = self._mark

    def close(self) -> None:
        """Close the log; leave a checkpoint where the next poll or reconnect will likely resume."""
        if self._job.done.is_set():
            self._checkpoints.forget(self._job)
        else:
            self._remember()
        self.tail.close()


def resume_offset() -> tuple[int, bool]:
    """Where a reader continues: Last-Event-ID (a reconnect) over ?offset=; and whether either was given."""
    for value in (request.headers.get("Last-Event-ID"), request.args.get("offset")):
        if value is not None:
            return (int(value) if value.isascii() and value.isdigit() and len(value) < 16 else 0), True
    return 0, False


def _event_stream(body: Iterator[str]) -> Response:
    resp = Response(stream_with_context(body), mimetype="text/event-stream")
    resp.headers["Cache-Control"] = "no-cache"
    resp.headers["X-Accel-Buffering"] = "no"  # a buffering reverse proxy would hold the lines back
    return resp


def events(spec: BuildSpec) -> Response:
    """SSE for a build URL: joins (or starts) the build, then tails its log until it ends.

    Without Last-Event-ID or ?offset= this is the original's endpoint and starts the build if
    none runs (admitted as the Start button is; never for a HEAD). A reader that resumes past
    byte 0 never starts one: it joins the running job or hears how the last one ended.
    """
    limit = services().streams
    if not limit.acquire():
        resp = Response("too many live streams open, poll .../live?offset=N instead\n", 503, mimetype="text/plain")
        resp.headers["Retry-After"] = "5"
        return resp
    try:
        coordinator = services().coordinator
        offset, resuming = resume_offset()
        job = coordinator.last(spec) if resuming else None
        if job is None and offset == 0:  # the original's endpoint (no offset), or a reader that had seen nothing
            job = _start(spec)
        resp = _event_stream(_job_events(job, offset))
    except BaseException:
        limit.release()
        raise
    resp.call_on_close(limit.release)
    return resp


def _start(spec: BuildSpec) -> Job | None:
    """Start spec's build for the events stream, as the Start button would: admitted (bad clients, rate limits)
    and never for a HEAD, which only asks whether the URL answers."""
    if request.method == "HEAD":
        return services().coordinator.last(spec)
    return admission.start(spec)


def _job_events(job: Job | None, offset: int) -> Iterator[str]:
    yield ": keepalive\n\n"
    if job is None:  # resumed, but this process has no such build (it restarted): log offsets mean nothing
        yield from _final_events(Status(BuildState.GONE, error="the build is not running any more, start it again"))
        return
    s = services()
    reader = Reader(job, s.store, offset, s.log_checkpoints)
    try:
        last_position, last_status, last_sent = -1, Status(BuildState.PENDING), time.monotonic()
        while True:
            done = job.done.is_set()
            if not done:
                position = s.coordinator.queue_position(job)
                if position != last_position:
                    yield update_event({"Kind": "QueuePosition", "QueuePosition": position})
                    last_position, last_sent = position, time.monotonic()
                if (status := status_of(job, position, reader.progress.progress)) != last_status:
                    yield _status_event(status)
                    if status.announcement != last_status.announcement:
                        yield _announce_event(status)
                    last_status, last_sent = status, time.monotonic()
            while (read := reader.read(whole_lines=not done))[0]:
                yield _log_event(read[1], reader.offset)
                last_sent = time.monotonic()
            if done:
                break
            if time.monotonic() - last_sent >= KEEPALIVE_SECONDS:
                yield ": keepalive\n\n"  # also how we notice a client that went away
                last_sent = time.monotonic()
            job.done.wait(TAIL_SECONDS)
    finally:
        reader.close()
    yield from _final_events(status_of(job))


def _final_events(status: Status) -> Iterator[str]:
    yield _status_event(status)
    yield _announce_event(status)
    yield update_event(_update_payload(status))
    yield _sse("end", status.kind)  # the page closes its EventSource on this


def result_events(spec: BuildSpec, result: Result) -> Response:
    """SSE for a result URL: the original's single Success event; a resuming reader gets the log's rest first."""
    offset, resuming = resume_offset()
    status = Status.success(spec, result.sum)
    if not resuming:
        return _event_stream(iter([update_event(_update_payload(status))]))

    def body() -> Iterator[str]:
        stored = services().store.read_blob(result.log)
        tail, folder = LogTail(offset, stored=stored), LogFolder()
        folder.render(stored[:offset].decode("utf-8", "replace"))
        while data := tail.read(whole_lines=False):
            yield _log_event(folder.render(data.decode("utf-8", "replace")), tail.offset)
        yield from _final_events(status)

    return _event_stream(body())


def fragment(spec: BuildSpec) -> BaseResponse:
    """The polling fallback: log lines after ?offset=, the status, and the next poll (htmx swaps them in)."""
    s = services()
    offset, _ = resume_offset()
    job = s.coordinator.last(spec)
    if job is None:  # nothing to follow: let the page render what is there now
        return redirect_fragment(None)
    if job.done.is_set() and job.result is not None:
        return redirect_fragment(urls.result_url(job.spec, job.result.sum))
    position = s.coordinator.queue_position(job)
    reader = Reader(job, s.store, offset, s.log_checkpoints)
    try:
        data, log = reader.read(whole_lines=not job.done.is_set(), limit=PAGE_LOG_LIMIT)
    finally:
        reader.close()
    status = status_of(job, position, reader.progress.progress)
    said = request.args.get("said", "")
    html = render_template("_poll.html", status=status, log=log if data else "", offset=reader.offset,
                           announce=status.announcement if status.announcement != said else None)
    resp = Response(html, mimetype="text/html")
    resp.headers["Cache-Control"] = "no-store"
    return resp


def redirect_fragment(href: str | None) -> BaseResponse:
    """A poll of a build that is over: htmx loads href (the result), or reloads the page (href None).

    Only htmx acts on its HX-* headers; any other client gets a redirect there ("." is the build page).
    """
    if not htmx.request.htmx:
        return redirect(href or ".", 303)
    resp: Response = htmx.make_response("", redirect=href) if href else htmx.make_response("", refresh=True)
    resp.headers["Cache-Control"] = "no-store"
    return resp


def progress_of(job: Job | None) -> Progress:
    """Where a running job is, from its whole log so far (its complete lines)."""
    if job is None or job.done.is_set():
        return NO_PROGRESS
    s = services()
    reader = Reader(job, s.store, sys.maxsize, s.log_checkpoints)
    reader.close()
    return reader.progress.progress


def page_log(job: Job | None) -> tuple[Markup, int, Progress]:
    """The log so far as page HTML, the offset where the stream continues, and the progress it shows."""
    if job is None or job.done.is_set():
        return Markup(""), 0, NO_PROGRESS
    s = services()
    reader = Reader(job, s.store, 0, s.log_checkpoints)
    try:
        _, log = reader.read(limit=PAGE_LOG_LIMIT)
        return log, reader.offset, reader.progress.progress
    finally:
        reader.close()


def polling() -> bool:
    """Whether a build page polls instead of streaming: asked to (?poll=1), or too many streams are open."""
    return bool(request.args.get("poll")) or services().streams.full

