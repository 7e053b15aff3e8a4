"""The one error vocabulary: every failure a request can end in carries its HTTP status and a stable code.

The web layer's one handler (web/errors.py) answers any GobuildError with `status` and, to clients
asking for JSON, {"error": {"status", "code", "message"}}. The message is for people; the code is
for programs, so codes never change once published (the README lists them, a test keeps it so).
"""

from __future__ import annotations

# The codes of errors whose status is chosen where they are raised (HTTPProblem), by status.
CODES_BY_STATUS = {400: "bad-request", 403: "forbidden", 404: "not-found", 405: "method-not-allowed",
                   422: "unprocessable", 429: "too-many-requests", 500: "internal", 503: "unavailable"}


class GobuildError(Exception):
    """Base of every error a request can end in: the message says in plain words what went wrong."""

    status = 500
    code = "internal"
    retry_after: int | None = None  # seconds, sent as Retry-After: the request may work later
    bare = False  # answer with the message alone, as Go's http.Error does (for Go clients of the log)


class HTTPProblem(GobuildError):
    """An error whose status is chosen where it is raised (a view's own check); its code follows the status."""

    def __init__(self, status: int, message: str, code: str | None = None, retry_after: int | None = None,
                 allow: str = "GET, HEAD") -> None:
        super().__init__(message)
        self.status = status
        self.code = code or CODES_BY_STATUS.get(status, "error")
        self.retry_after = retry_after
        self.allow = allow  # the methods a 405 names


class BareProblem(HTTPProblem):
    """An HTTPProblem answered as "<message>\\n" in plain text: the transparency log's endpoints."""

    bare = True

    @classmethod
    def of(cls, e: GobuildError, status: int, message: str) -> BareProblem:
        """e with another status and message, keeping its code and Retry-After."""
        return cls(status, message, e.code, e.retry_after)
