"""Errors that views raise, and the one handler that turns any error into a response."""

from __future__ import annotations

import logging
from http import HTTPStatus

from flask import Flask, Response, render_template, request
from werkzeug.exceptions import HTTPException

from ..failures import BuildError, Busy
from ..goproxy import NotFound as ProxyNotFound
from ..goproxy import RemoteError
from ..module import InvalidPath, InvalidVersion
from . import negotiate, suggest
from .current import services
from .urls import BadPath

log = logging.getLogger(__name__)


class HTTPProblem(Exception):
    """An error with the status to answer and a one-line message for the user."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _status_of(e: Exception) -> int:
    if isinstance(e, HTTPProblem):
        return e.status
    if isinstance(e, BuildError):
        return e.status
    if isinstance(e, (BadPath, ProxyNotFound)):
        return 404
    if isinstance(e, (InvalidPath, InvalidVersion)):
        return 400
    if isinstance(e, RemoteError):
        return 503
    if isinstance(e, HTTPException):
        return e.code or 500
    return 500


# What went wrong, in plain words, by status: the page's heading (the status itself comes after).
_HEADLINES = {400: "That address is not one gobuild understands", 403: "This client may not start builds here",
              404: "That module, version or page does not exist", 405: "That kind of request is not possible here",
              422: "This cannot be built", 429: "You have started many builds just now",
              503: "gobuild or the module proxy is busy or unreachable right now"}


def headline(status: int) -> str:
    """What went wrong, in plain words."""
    if status >= 500:
        return _HEADLINES[503] if status == 503 else "Something went wrong on our side"
    return _HEADLINES.get(status, "That did not work")


def error_response(e: Exception) -> Response:
    """Render e as "<status> - <text> - <message>": HTML for browsers, plain text for the rest."""
    status = _status_of(e)
    if status >= 500 and not isinstance(e, (BuildError, RemoteError, HTTPProblem)):
        log.exception("internal error on %s %s", request.method, request.path, exc_info=e)
        services().metrics.panics.inc()
        message = "internal server error"
    elif isinstance(e, HTTPException):
        message = e.description or ""
    else:
        message = str(e)
    if status >= 500 and message != "internal server error":  # proxy, toolchain, peers: log the cause
        log.warning("%s %s answered %d: %s", request.method, request.path, status, message)
    line = f"{status} - {HTTPStatus(status).phrase} - {message}"
    if negotiate.wants_json():
        resp = negotiate.error_json(e, status, message)
    elif request.accept_mimetypes.accept_html and "text/html" in request.headers.get("Accept", ""):
        resp = Response(render_template("error.html", status=status, message=message,
                                        headline=headline(status), phrase=HTTPStatus(status).phrase,
                                        suggestions=suggest.suggestions(e)), status, mimetype="text/html")
    else:
        resp = Response(line + "\n", status, mimetype="text/plain")
    resp.headers["Cache-Control"] = "no-store"
    if isinstance(e, Busy):
        resp.headers["Retry-After"] = str(e.retry_after)
    if status == 405:
        resp.headers["Allow"] = "GET, HEAD"
    if isinstance(e, HTTPException):
        for k, v in e.get_headers():
            if k.lower() in ("allow", "retry-after"):
                resp.headers[k] = v
    return resp


def register(app: Flask) -> None:
    """Route every exception through error_response."""
    app.register_error_handler(Exception, error_response)
