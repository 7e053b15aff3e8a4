"""A build log as page HTML: go's meaningful lines shown, the commands `go install -x` prints folded.

Folded lines are wrapped in <span class="x">, which the stylesheet hides until the reader opens
the log's "full log" <details> (no script needed). Everything else is escaped text.
"""

from __future__ import annotations

import re

from markupsafe import Markup, escape

# What -x prints besides go's own messages: the shell commands it runs and the files it writes.
_COMMAND = re.compile(
    r"(WORK=|mkdir |echo |cd |cat |cp |mv |rm |touch |chmod |ln |go tool |GOROOT=|\$WORK/|"
    r"packagefile |importmap |modinfo |# import config$|EOF$|\S*/pkg/tool/[^/\s]+/\w+ )")
_HEREDOC = re.compile(r"<< '?EOF'?")


class LogFolder:
    """Renders a log piece by piece; keeps whether a here-document (cat >file << EOF) is open between pieces."""

    def __init__(self, in_heredoc: bool = False) -> None:
        self._in_heredoc = in_heredoc

    @property
    def in_heredoc(self) -> bool:
        """Whether the next line is inside a here-document (folded until its EOF)."""
        return self._in_heredoc

    def render(self, text: str) -> Markup:
        """The HTML of the next piece of the log."""
        out: list[str] = []
        for line in text.splitlines(keepends=True):
            escaped = str(escape(line))
            out.append(f'<span class="x">{escaped}</span>' if self._folded(line.rstrip("\r\n")) else escaped)
        return Markup("".join(out))

    def advance(self, text: str) -> None:
        """Take the next piece of the log without rendering it: only the folding state moves on."""
        for line in text.splitlines(keepends=True):
            self._folded(line.rstrip("\r\n"))

    def _folded(self, line: str) -> bool:
        if self._in_heredoc:
            self._in_heredoc = line != "EOF"
            return True
        if _COMMAND.match(line):
            self._in_heredoc = bool(_HEREDOC.search(line))
            return True
        return False


def fold(text: str) -> Markup:
    """A whole log (or a piece read from its start) as HTML."""
    return LogFolder().render(text)
