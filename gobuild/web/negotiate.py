"""Content negotiation for the JSON twins: who wants JSON, and errors as JSON with a stable code."""

from __future__ import annotations

from flask import Response, jsonify, request
from werkzeug.exceptions import HTTPException

from ..failures import BuildError
from ..goproxy import NotFound as ProxyNotFound
from ..goproxy import RemoteError
from ..module import InvalidPath, InvalidVersion
from .urls import BadPath

JSON = "application/json"

# Stable error codes by status, for errors that carry none of their own.
_CODES = {400: "bad-request", 404: "not-found", 405: "method-not-allowed", 422: "unprocessable",
          500: "internal", 503: "unavailable"}


def wants_json() -> bool:
    """Whether the client asked for JSON over HTML (Accept: application/json; */* alone stays HTML)."""
    accept = request.accept_mimetypes
    return accept[JSON] > 0 and accept.best_match(["text/html", JSON]) == JSON


def error_code(e: Exception, status: int) -> str:
    """The stable code of an error: what kind of problem, for programs (the message is for people)."""
    if isinstance(e, BuildError) and e.status == status:
        return e.code
    if isinstance(e, BadPath):
        return "bad-path"
    if isinstance(e, InvalidPath):
        return "bad-module-path"
    if isinstance(e, InvalidVersion):
        return "bad-version"
    if isinstance(e, ProxyNotFound):
        return "not-found"
    if isinstance(e, RemoteError):
        return "proxy-unavailable"
    code = getattr(e, "code", None)
    if isinstance(code, str) and not isinstance(e, HTTPException):
        return code
    return _CODES.get(status, "error")


def error_json(e: Exception, status: int, message: str) -> Response:
    """{"error": {"status", "code", "message"}} with the status of the HTML/text answer."""
    resp = jsonify(error={"status": status, "code": error_code(e, status), "message": message})
    resp.status_code = status
    return resp
