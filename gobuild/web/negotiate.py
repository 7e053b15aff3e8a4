"""Content negotiation for the JSON twins: who wants JSON, and errors as JSON with their stable code."""

from __future__ import annotations

from flask import Response, jsonify, request

JSON = "application/json"


def wants_json() -> bool:
    """Whether the client asked for JSON over HTML (Accept: application/json; */* alone stays HTML)."""
    accept = request.accept_mimetypes
    return accept[JSON] > 0 and accept.best_match(["text/html", JSON]) == JSON


def error_json(status: int, code: str, message: str) -> Response:
    """{"error": {"status", "code", "message"}} with the status of the HTML/text answer."""
    resp = jsonify(error={"status": status, "code": code, "message": message})
    resp.status_code = status
    return resp
