"""Where readers of a live build log may resume: their state at a few offsets of each job's log.

Each poll and each reconnect of the live log needs the phase progress and the folding state of
everything before its offset. Rebuilding them from byte 0 costs the whole log every time, so a
reader starts instead from the nearest checkpoint at or before its offset. Readers record
checkpoints only where their state is exactly what reading the log from byte 0 gives (see
live.Reader), and only for the live file, which only grows: a checkpoint stays true for the job.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from ..builds import Job
from ..phases import NO_PROGRESS, Progress


@dataclass(frozen=True)
class Checkpoint:
    """A reader's state just after a newline of a job's log (or at its start)."""

    offset: int
    progress: Progress
    in_heredoc: bool  # the folder's: a here-document of go -x is open


START = Checkpoint(0, NO_PROGRESS, False)


class LogCheckpoints:
    """A few checkpoints per job for the jobs read most recently, least recently used dropped first.

    Thread-safe: the server's threads share one. Keyed by the job's log path, unique per job of a
    coordinator (one per app, as is this).
    """

    def __init__(self, per_job: int = 8, jobs: int = 64) -> None:
        self.per_job = per_job
        self.jobs = jobs
        self._kept: OrderedDict[Path, OrderedDict[int, Checkpoint]] = OrderedDict()
        self._lock = threading.Lock()

    def nearest(self, job: Job, offset: int) -> Checkpoint:
        """The checkpoint of job's log closest at or before offset (START if none)."""
        with self._lock:
            kept = self._kept.get(job.log_path)
            best = max((o for o in kept if o <= offset), default=None) if kept else None
            if kept is None or best is None:
                return START
            self._kept.move_to_end(job.log_path)
            kept.move_to_end(best)
            return kept[best]

    def record(self, job: Job, checkpoint: Checkpoint) -> None:
        """Keep checkpoint for later readers of job, dropping the least recently used past the bounds."""
        with self._lock:
            kept = self._kept.setdefault(job.log_path, OrderedDict())
            self._kept.move_to_end(job.log_path)
            kept[checkpoint.offset] = checkpoint
            kept.move_to_end(checkpoint.offset)
            while len(kept) > self.per_job:
                kept.popitem(last=False)
            while len(self._kept) > self.jobs:
                self._kept.popitem(last=False)

    def forget(self, job: Job) -> None:
        """Drop job's checkpoints: it ended, and later readers get its stored log."""
        with self._lock:
            self._kept.pop(job.log_path, None)

    def offsets(self, job: Job) -> list[int]:
        """Where job's log has checkpoints, in order."""
        with self._lock:
            return sorted(self._kept.get(job.log_path, ()))
