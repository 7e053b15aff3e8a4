"""The Flask app: create_app() builds the services (gobuild.services) and registers the views."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .. import config as configmod

if TYPE_CHECKING:  # Flask is imported by create_app: `gobuild get` and peers import gobuild.urls without it
    from flask import Flask


def create_app(cfg: configmod.Config | None = None) -> Flask:
    """The gobuild web app for a configuration (defaults when None)."""
    from flask import Flask
    from htmx_flask import Htmx

    from .. import logs, urls
    from ..services import build_services
    from . import (
        admission,
        api,
        current,
        errors,
        fastpath,
        feeds,
        install,
        instrument,
        site,
        steps,
        tlogviews,
        upload,
        views,
    )

    cfg = cfg or configmod.load()
    app = Flask("gobuild")  # templates/ and static/ beside this package's __init__, shipped as package data
    app.url_map.merge_slashes = False  # we answer // with our own 301, like the original
    app.url_map.strict_slashes = False
    Htmx(app)  # request.htmx: whether htmx (HX-Request) asks
    svc = build_services(cfg)
    current.install(app, svc)
    if cfg.fast_path:  # immutable answers from memory, past Flask (fastpath.py)
        app.wsgi_app = fastpath.FastPath(app.wsgi_app, svc.tlog)  # type: ignore[method-assign]
    app.jinja_env.globals.update(urls=urls, Page=urls.Page)  # templates build every URL through urls
    app.jinja_env.filters["timestamp"] = lambda t: time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))
    logs.configure(cfg.log_format)

    errors.register(app)
    app.register_blueprint(instrument.bp)
    app.register_blueprint(admission.bp)
    app.register_blueprint(site.bp)
    app.register_blueprint(steps.bp)
    app.register_blueprint(tlogviews.bp)
    app.register_blueprint(upload.bp)
    app.register_blueprint(install.bp)
    app.register_blueprint(feeds.bp)
    app.register_blueprint(views.bp)
    app.register_blueprint(api.bp)  # after views: its JSON twins run after their path checks
    return app
