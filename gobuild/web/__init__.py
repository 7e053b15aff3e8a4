"""The Flask app: create_app() builds the services (gobuild.services) and registers the views."""

from __future__ import annotations

import time

from flask import Flask
from htmx_flask import Htmx

from .. import config as configmod


def create_app(cfg: configmod.Config | None = None) -> Flask:
    """The gobuild web app for a configuration (defaults when None)."""
    from .. import logs
    from ..services import build_services
    from . import admission, api, current, errors, feeds, install, instrument, site, tlogviews, upload, views

    cfg = cfg or configmod.load()
    app = Flask("gobuild")  # templates/ and static/ beside this package's __init__, shipped as package data
    app.url_map.merge_slashes = False  # we answer // with our own 301, like the original
    app.url_map.strict_slashes = False
    Htmx(app)  # request.htmx: whether htmx (HX-Request) asks
    current.install(app, build_services(cfg))
    app.jinja_env.filters["timestamp"] = lambda t: time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))
    logs.configure(cfg.log_format)

    errors.register(app)
    app.register_blueprint(instrument.bp)
    app.register_blueprint(admission.bp)
    app.register_blueprint(site.bp)
    app.register_blueprint(tlogviews.bp)
    app.register_blueprint(upload.bp)
    app.register_blueprint(install.bp)
    app.register_blueprint(feeds.bp)
    app.register_blueprint(views.bp)
    app.register_blueprint(api.bp)  # after views: its JSON twins run after their path checks
    return app
