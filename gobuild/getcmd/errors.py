"""The failures of `gobuild get`, each with its exit code."""

from __future__ import annotations

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_SECURITY = 3  # distinct, so scripts can tell a misbehaving server from a flaky one


class GetError(Exception):
    """A failure of `gobuild get`, shown as one line; exit_code says what kind."""

    exit_code = EXIT_ERROR


class UsageError(GetError):
    """Bad flags or arguments, or no verifier key: the user must change the command."""

    exit_code = EXIT_USAGE


class SecurityFailure(GetError):
    """The server's log contradicts what this client saw before; the message is the full proof."""

    exit_code = EXIT_SECURITY

