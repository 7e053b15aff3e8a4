"""The services of the app handling the current request, typed for the views."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from flask import Flask, current_app

if TYPE_CHECKING:
    from ..services import Services

_KEY = "gobuild"


def install(app: Flask, services: Services) -> None:
    """Make services what services() returns while app handles a request."""
    app.extensions[_KEY] = services


def services() -> Services:
    """The current app's services (built by gobuild.services.build_services)."""
    return cast("Services", current_app.extensions[_KEY])


def services_of(app: Flask) -> Services:
    """The services installed in app (outside a request: the server's setup)."""
    return cast("Services", app.extensions[_KEY])
