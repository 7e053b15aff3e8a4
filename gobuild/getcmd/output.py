"""Terminal output of `gobuild get`: messages to stderr and a download progress line."""

from __future__ import annotations

import sys
import time
from typing import Protocol, TextIO


class Output:
    """Messages to stderr: normal ones unless quiet, debug ones when verbose."""

    def __init__(self, quiet: bool, verbose: bool, stream: TextIO | None = None) -> None:
        self.quiet = quiet
        self.verbose = verbose
        self._stream = stream

    @property
    def stream(self) -> TextIO:
        """The stream in use; sys.stderr is looked up late so test capture works."""
        return self._stream or sys.stderr

    def info(self, msg: str) -> None:
        """Print msg unless quiet."""
        if not self.quiet:
            print(msg, file=self.stream, flush=True)

    def debug(self, msg: str) -> None:
        """Print msg when verbose."""
        if self.verbose:
            print(msg, file=self.stream, flush=True)

    def progress(self, total: int) -> Progress:
        """Return a download progress indicator, drawn only when stderr is a terminal."""
        if self.quiet or not self.stream.isatty():
            return _NoProgress()
        return _Progress(self.stream, total)


class Progress(Protocol):
    """Shows how many of the binary's bytes arrived."""

    def __call__(self, done: int) -> None: ...

    def close(self) -> None: ...


class _NoProgress:
    """Progress for pipes and -quiet: nothing."""

    def __call__(self, done: int) -> None:
        pass

    def close(self) -> None:
        pass


class _Progress:
    """A one-line progress indicator that redraws itself at most ten times a second."""

    def __init__(self, stream: TextIO, total: int) -> None:
        self.stream = stream
        self.total = max(total, 1)
        self.last = 0.0
        self.drawn = False

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if done < self.total and now - self.last < 0.1:
            return
        self.last = now
        self.drawn = True
        self.stream.write(f"\rdownloading {mb(done)} of {mb(self.total)} ({100 * done // self.total}%)")
        self.stream.flush()

    def close(self) -> None:
        """Erase the line, so the next message (or error) starts clean."""
        if self.drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()


def mb(size: int) -> str:
    """Format a byte count like the original's messages: 12.3mb."""
    return f"{size / (1024 * 1024):.1f}mb"
