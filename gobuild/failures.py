"""Typed build errors (GobuildErrors: they carry their HTTP status), and the classification of `go` output."""

from __future__ import annotations

import re

from .errors import GobuildError


class BuildError(GobuildError):
    """Base of all errors a build can end in; status is the HTTP status to answer with."""

    status = 500
    code = "internal"


class NotFound(BuildError):
    """The module, version or package does not exist."""

    status = 404
    code = "not-found"


class UserError(BuildError):
    """The request cannot be built as asked (not a main package, unknown Go version, ...)."""

    status = 422
    code = "unprocessable"


class TemporaryFailure(BuildError):
    """A remote or transient problem; nothing is stored, the next request tries again."""

    status = 503
    code = "temporary"


class QueueUnreachable(TemporaryFailure):
    """Redis, which the build queue lives in, does not answer; detail (its host and port) is for the operator."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


class Busy(TemporaryFailure):
    """Too many requests wait for builds already: come back later (the build itself goes on)."""

    def __init__(self, message: str, retry_after: int = 30) -> None:
        super().__init__(message)
        self.retry_after: int | None = retry_after


class PermanentFailure(BuildError):
    """The build itself failed; stored with its log until somebody retries."""

    status = 422
    code = "build-failed"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


# REFERENCE 3.5, in order, first match wins; plus the texts newer go commands print.
_REASONS: list[tuple[str, tuple[str, ...]]] = [
    ("cgo", ("requires external (cgo) linking, but cgo is not enabled",)),
    ("module path mismatch", ("module declares its path as", "but was required as")),
    ("version constraints conflict", (": version constraints conflict:",)),
    ("unsupported platform", ("go: unsupported GOOS/GOARCH pair ",)),
    ("external linker", ("loadinternal: cannot find runtime/cgo",)),
    ("likely import of future standard library package", ("is not in GOROOT (",)),
    ("likely import of future standard library package", ("is not in std (",)),
    ("go.mod has replace directives", (
        "The go.mod file for the module providing named packages contains one or",
        "more replace directives. It must not contain directives that would cause",
    )),
    ("requires newer go version", ("note: module requires Go ",)),
    ("requires newer go version", ("requires go >= ", "GOTOOLCHAIN=")),
    ("imported module requires newer go", ("note: imported by a module that requires go",)),
    ("build constraint excludes all go files", (": build constraints exclude all Go files in",)),
    ("undefined symbol likely only available in newer stdlib", (": undefined: ",)),
    ("unknown field in struct likely only available in newer stdlib", (": unknown field ",)),
    ("invalid link reference", ("link: ", ": invalid reference to ")),
]
UNCLASSIFIED = "unclassified"  # the output says why, but not in a way listed above: show its last lines
# A compile error in the module's source. Go names the file by its module cache path: GOPATH's
# go/pkg/mod/ as the original has it, or the sandbox's /gomodcache/ (gocmd.SANDBOX_MODCACHE).
_SOURCE_LINE = re.compile(r"(?:go/pkg/mod|^/gomodcache)/.*\.go:[1-9][0-9]*:[1-9][0-9]*: ", re.MULTILINE)
_POSITION = re.compile(r"\.go:[1-9][0-9]*(?::[1-9][0-9]*)?: ")

# Output that means the network or the proxy failed, not the module: retry later, store nothing.
_TEMPORARY = ("dial tcp", "connection refused", "i/o timeout", "TLS handshake timeout",
              "no such host", "500 Internal Server Error", "502 Bad Gateway",
              "503 Service Unavailable", "504 Gateway Timeout", "connection reset by peer")


def classify(output: str) -> str:
    """The reason a build failed, from the go command's output; UNCLASSIFIED if none matches."""
    for reason, needles in _REASONS:
        if all(n in output for n in needles):
            return reason
    if _SOURCE_LINE.search(output):
        return "error on go source line"
    return UNCLASSIFIED


# What `go install -x -v` prints besides errors: commands, here-documents, package names.
_TRACE = re.compile(r"^(?:mkdir|cd|cat|rm|mv|cp|echo|touch|chmod|ln|EOF\b|WORK=|packagefile |modinfo |"
                    r"# import config|go tool |\$WORK|/|[A-Z0-9_]+=)|# internal$")


def cause(output: str, count: int = 3) -> str:
    """The last lines of go's output that say why it failed (not -x commands or -v package names)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    meaningful = [line for line in lines if " " in line and (_POSITION.search(line) or not _TRACE.search(line))]
    text = " | ".join((meaningful or lines)[-count:])
    return "".join(c if c.isprintable() else "?" for c in text)[:1000]


def failure_message(reason: str, output: str, fallback: str) -> str:
    """The one-line failure shown on pages and in plain-text answers: the reason and go's own words."""
    detail = cause(output) or fallback
    return f"build failed: {detail}" if reason == UNCLASSIFIED else f"build failed ({reason}): {detail}"


def is_temporary(output: str) -> bool:
    """Whether a failure came from the network or the proxy rather than from the module."""
    return any(n in output for n in _TEMPORARY)
