"""The Flask app: create_app() wires the services together and registers the views."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from flask import Flask

from .. import config as configmod
from ..builds import Builder, BuildSettings, Coordinator
from ..goproxy import GoProxyClient, goproxy_for_go
from ..store import Store
from ..targets import Targets
from ..toolchains import Toolchains

ROOT = Path(__file__).resolve().parent.parent.parent


@dataclass
class Services:
    """Everything the views use, built once per app."""

    config: configmod.Config
    store: Store
    toolchains: Toolchains
    targets: Targets
    proxy: GoProxyClient
    builder: Builder
    coordinator: Coordinator


def build_services(cfg: configmod.Config) -> Services:
    """Open the data dir and set up the build machinery."""
    store = Store(cfg.data_path)
    toolchains = Toolchains(cfg.toolchains, cfg.data_path / "sdk")
    settings = BuildSettings(goproxy_for_go(cfg.goproxy), cfg.environment, cfg.build_timeout,
                             cfg.prepare_timeout)
    builder = Builder(settings, store, toolchains, cfg.cache_path)
    return Services(
        config=cfg,
        store=store,
        toolchains=toolchains,
        targets=Targets(),
        proxy=GoProxyClient(cfg.goproxy, timeout=cfg.proxy_timeout),
        builder=builder,
        coordinator=Coordinator(builder, cfg.max_builds),
    )


def create_app(cfg: configmod.Config | None = None) -> Flask:
    """The gobuild web app for a configuration (defaults when None)."""
    cfg = cfg or configmod.load()
    app = Flask("gobuild", template_folder=str(ROOT / "templates"), static_folder=str(ROOT / "static"))
    app.url_map.merge_slashes = False  # we answer // with our own 301, like the original
    app.url_map.strict_slashes = False
    app.extensions["gobuild"] = build_services(cfg)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from . import errors, views

    errors.register(app)
    app.register_blueprint(views.bp)
    return app
