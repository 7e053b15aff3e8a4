"""The states a build goes through, as StrEnums: their values are the strings the pages, templates
and JSON show, so comparing with or rendering a member is byte-identical to the old free strings."""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    """Where a build job of this process is (builds.Job.state)."""

    QUEUED = "queued"
    RUNNING = "running"
    VERIFYING = "verifying"  # compiled; waiting for peers, its build slot given back
    DONE = "done"


class BuildState(StrEnum):
    """What a build page's status line says, and the "state" of the JSON build status."""

    PENDING = "pending"  # nothing runs: the page offers Start
    QUEUED = "queued"
    RUNNING = "running"
    VERIFYING = "verifying"
    SUCCESS = "success"
    FAILED = "failed"  # permanent: the build cannot work as asked
    TEMPFAILED = "tempfailed"
    GONE = "gone"  # an event stream resumed after a restart: the build is no longer known
