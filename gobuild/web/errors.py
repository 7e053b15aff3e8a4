"""The one error handler: any exception becomes an answer in HTML, plain text or JSON, as the client asks."""

from __future__ import annotations

import logging
from http import HTTPStatus

from flask import Flask, Response, render_template, request
from werkzeug.exceptions import HTTPException

from ..errors import CODES_BY_STATUS, GobuildError, HTTPProblem
from . import negotiate, suggest
from .current import services

log = logging.getLogger(__name__)

TLOG_TEXT = "text/plain; charset=UTF-8"  # what Go's http.Error sends, for the log's Go clients

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
    """Render e as "<status> - <text> - <message>": HTML for browsers, JSON when asked, plain text for the rest."""
    status, code, message = _describe(e)
    if status >= 500 and isinstance(e, GobuildError):  # proxy, toolchain, peers: log the cause
        log.warning("%s %s answered %d: %s", request.method, request.path, status, message)
    if isinstance(e, GobuildError) and e.bare:
        resp = Response(message + "\n", status, content_type=TLOG_TEXT)
    elif negotiate.wants_json():
        resp = negotiate.error_json(status, code, message)
    else:
        resp = _page(e, status, message)
    resp.headers["Cache-Control"] = "no-store"
    _copy_headers(e, status, resp)
    return resp


def _describe(e: Exception) -> tuple[int, str, str]:
    """The status, stable code and message of e; a bug's details stay in our log."""
    if isinstance(e, GobuildError):
        return e.status, e.code, str(e)
    if isinstance(e, HTTPException) and (e.code or 500) < 500:  # routing: unknown path, method not allowed
        status = e.code or 500
        return status, CODES_BY_STATUS.get(status, "error"), e.description or ""
    log.exception("internal error on %s %s", request.method, request.path, exc_info=e)
    services().metrics.panics.inc()
    return 500, "internal", "internal server error"


def _page(e: Exception, status: int, message: str) -> Response:
    if request.accept_mimetypes.accept_html and "text/html" in request.headers.get("Accept", ""):
        page = render_template("error.html", status=status, message=message, headline=headline(status),
                               phrase=HTTPStatus(status).phrase, suggestions=suggest.suggestions(e))
        return Response(page, status, mimetype="text/html")
    line = f"{status} - {HTTPStatus(status).phrase} - {message}"
    return Response(line + "\n", status, mimetype="text/plain")


def _copy_headers(e: Exception, status: int, resp: Response) -> None:
    if isinstance(e, GobuildError) and e.retry_after is not None:
        resp.headers["Retry-After"] = str(e.retry_after)
    if status == 405:
        resp.headers["Allow"] = e.allow if isinstance(e, HTTPProblem) else "GET, HEAD"
    if isinstance(e, HTTPException):
        for k, v in e.get_headers():
            if k.lower() in ("allow", "retry-after"):
                resp.headers[k] = v


def register(app: Flask) -> None:
    """Route every exception through error_response (the only error handler)."""
    app.register_error_handler(Exception, error_response)
