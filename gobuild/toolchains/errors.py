"""The toolchain errors, each carrying its HTTP status through its base class."""

from __future__ import annotations

from ..failures import BuildError, TemporaryFailure, UserError


class UnknownGoVersion(UserError):
    """The requested Go version is malformed or not available here (a user error)."""


class UnsupportedTarget(UserError):
    """The Go version cannot build for the requested GOOS/GOARCH."""


class ToolchainUnavailable(TemporaryFailure):
    """The module proxy failed while fetching a toolchain; the next request tries again."""


class ToolchainRejected(BuildError):
    """A downloaded toolchain failed a check (unsafe zip, smoke test); nothing was installed."""

    status = 502
    code = "toolchain-rejected"

