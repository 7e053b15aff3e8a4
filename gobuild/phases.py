"""Where a build is, read from its log bytes alone.

The builder writes a marker line at each phase change ("gobuild: compiling 61 packages [<time>]");
`go install -x` adds a compile command line per package and a link command. The log is all a
coordinator sees of a build on another machine, so the phase is parsed from it, never kept aside.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum


class Phase(StrEnum):
    """The phases of a build, in order; the values are what the page says."""

    INSTALLING_GO = "installing go"  # only the first build with a Go version the server has not installed
    DOWNLOADING = "downloading module"
    COMPILING = "compiling"
    LINKING = "linking"
    HASHING = "hashing"
    VERIFYING = "asking verifiers"
    LOGGING = "logging"


# The phases the builder marks itself; linking is seen in go's own output.
_MARKED = (Phase.INSTALLING_GO, Phase.DOWNLOADING, Phase.COMPILING, Phase.HASHING, Phase.VERIFYING, Phase.LOGGING)
_MARKER = re.compile(r"gobuild: (" + "|".join(_MARKED) + r")(?: (.*?))? \[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)\]")
_TOTAL = re.compile(r"(\d+) packages?")
_COMPILE = re.compile(r"(?:GOROOT=\S* )?\S*/pkg/tool/[^/\s]+/compile\s")
_LINK = re.compile(r"(?:GOROOT=\S* )?\S*/pkg/tool/[^/\s]+/link\s")
_BUILT = re.compile(r"built \S+: \d+ bytes, sum \S+")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def marker(phase: Phase, detail: str = "", at: datetime | None = None) -> str:
    """The log line that starts phase (detail: e.g. "61 packages", or the module)."""
    when = (at or datetime.now(UTC)).strftime(_TIME_FORMAT)
    return f"gobuild: {phase}{' ' + detail if detail else ''} [{when}]\n"


@dataclass(frozen=True)
class Progress:
    """Where a build is: its phase, packages compiled of how many, and since when (Unix seconds)."""

    phase: Phase | None = None
    compiled: int = 0
    total: int | None = None  # packages to compile, when the builder knew beforehand
    since: float | None = None  # when the phase began, if its marker said
    started: float | None = None  # when the build began (its first marker)


NO_PROGRESS = Progress()  # nothing read yet


class ProgressReader:
    """Reads a log piece by piece (in any cuts) and keeps its Progress."""

    def __init__(self, progress: Progress = NO_PROGRESS) -> None:
        """A reader starting at a line start where the log so far shows progress."""
        self.progress = progress
        self._partial = b""

    def feed(self, data: bytes) -> Progress:
        """Take the next bytes of the log; the progress after the whole lines so far."""
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            self.progress = advance(self.progress, line.decode("utf-8", "replace"))
        return self.progress


def parse(log: bytes) -> Progress:
    """The progress of a whole log (or of the lines of its tail that carry markers)."""
    return ProgressReader().feed(log if log.endswith(b"\n") else log + b"\n")


def advance(progress: Progress, line: str) -> Progress:
    """The progress after one more log line."""
    if m := _MARKER.fullmatch(line.rstrip("\r")):
        at = datetime.strptime(m.group(3), _TIME_FORMAT).replace(tzinfo=UTC).timestamp()
        phase, detail = Phase(m.group(1)), m.group(2) or ""
        total = int(t.group(1)) if phase == Phase.COMPILING and (t := _TOTAL.fullmatch(detail)) else None
        started = progress.started if progress.started is not None else at
        compiled = progress.compiled if phase != Phase.DOWNLOADING else 0
        return Progress(phase, compiled, total if phase == Phase.COMPILING else progress.total, at, started)
    if _COMPILE.match(line):
        return replace(progress, phase=Phase.COMPILING, compiled=progress.compiled + 1)
    if _LINK.match(line) and progress.phase == Phase.COMPILING:
        return replace(progress, phase=Phase.LINKING, since=None)
    if _BUILT.fullmatch(line) and progress.phase == Phase.HASHING:
        return replace(progress, phase=Phase.LOGGING, since=None)  # stored; logged next, unless verifiers are asked
    return progress


def count_compiles(commands: str) -> int:
    """How many packages a `go install -n` (or -x) output compiles."""
    return sum(1 for line in commands.splitlines() if _COMPILE.match(line))
