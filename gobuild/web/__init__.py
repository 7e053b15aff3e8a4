"""The Flask app: create_app() wires the services together and registers the views."""

from __future__ import annotations

import logging
import shlex
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from flask import Flask

from .. import config as configmod
from ..builds import Builder, BuildSettings, Coordinator
from ..gocmd import GoRunner, Sandbox, find_sandbox
from ..goproxy import GoProxyClient, goproxy_for_go
from ..spec import BuildSpec, Record, SpecError
from ..store import Store
from ..targets import Targets
from ..tlog import note
from ..tlog.server import TransparencyLog, load_or_create_signer
from ..toolchains import Toolchains
from ..verify import Verifier, parse_peers
from .live import StreamLimit
from .pages import VersionsCache

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
    tlog: TransparencyLog
    verifier: Verifier | None
    sandbox_warning: str  # "" when builds run sandboxed, else why they do not (shown on the home page)
    streams: StreamLimit  # open live-log streams, each holding a server thread
    waits: StreamLimit  # requests waiting for a build, each holding a server thread
    versions: VersionsCache  # module version lists for the link columns

    def recent_builds(self, count: int = 10) -> list[tuple[BuildSpec, str]]:
        """The newest logged builds, newest first: (spec, sum), read from the log's tail."""
        size = self.tlog.size()
        out = []
        for n in range(size - 1, max(size - count, 0) - 1, -1):
            try:
                record = Record.parse(self.tlog.record(n))
            except SpecError:
                continue
            out.append((record.spec, record.sum))
        return out

    def get_command(self, spec: BuildSpec, sum_: str | None, host: str) -> str:
        """The `gobuild get` command that fetches and verifies spec through our log."""
        q = shlex.quote
        parts = ["gobuild get", f"-verifierkey {q(self.tlog.verifier_key)}", f"-url {q(f'http://{host}/tlog')}"]
        if sum_:
            parts.append(f"-sum {q(sum_)}")
        parts += [f"-target {q(f'{spec.goos}/{spec.goarch}')}", f"-goversion {q(spec.goversion)}"]
        if spec.stripped:
            parts.append("-stripped")
        parts.append(q(f"{spec.module}@{spec.version}{'' if spec.dir == '/' else spec.dir}"))
        return " ".join(parts)


def build_services(cfg: configmod.Config) -> Services:
    """Open the data dir and set up the build machinery."""
    store = Store(cfg.data_path)
    targets = Targets()
    sandbox, sandbox_warning = _sandbox(cfg)
    toolchains = Toolchains.from_config(cfg, targets=targets, runner=GoRunner(None, sandbox=sandbox))
    threading.Thread(target=_learn_targets, args=(toolchains, targets), daemon=True).start()
    settings = BuildSettings(goproxy_for_go(cfg.goproxy), cfg.environment, cfg.build_timeout,
                             cfg.prepare_timeout, sandbox)
    signer_file = Path(cfg.signer_key_file) if cfg.signer_key_file else None
    try:
        signer, _ = load_or_create_signer(cfg.data_path / "tlog", cfg.log_name, signer_file)
    except (OSError, ValueError) as e:
        raise configmod.ConfigError(f"config: signer key: {e}") from e
    tlog = TransparencyLog(cfg.data_path / "tlog", signer)
    verifier = _verifier(cfg, tlog.verifier_key)
    try:
        builder = Builder(settings, store, toolchains, cfg.cache_path, tlog, verifier, compile=cfg.build)
    except ValueError as e:
        raise configmod.ConfigError(f"config: {e}") from e
    proxy = GoProxyClient(cfg.goproxy, timeout=cfg.proxy_timeout)
    return Services(
        config=cfg,
        store=store,
        toolchains=toolchains,
        targets=targets,
        proxy=proxy,
        builder=builder,
        coordinator=Coordinator(builder, cfg.max_builds),
        tlog=tlog,
        verifier=verifier,
        sandbox_warning=sandbox_warning,
        streams=StreamLimit(cfg.stream_limit),
        waits=StreamLimit(cfg.wait_limit),
        versions=VersionsCache(proxy.list),
    )


def _sandbox(cfg: configmod.Config) -> tuple[Sandbox | None, str]:
    """The build sandbox the config asks for, and the warning to show when builds are not isolated."""
    if cfg.sandbox == "off":
        sandbox, why = None, 'the config says "sandbox": "off"'
    else:
        sandbox, why = find_sandbox()
        if sandbox is None and cfg.sandbox == "required":
            raise configmod.ConfigError(f"config: sandbox is required, but {why}")
    if sandbox is not None:
        return sandbox, ""
    warning = (f"builds are NOT isolated ({why}): go commands run as this server's user and can read its "
               "files; install bubblewrap (apt-get install bubblewrap) before offering this instance to others")
    logging.getLogger(__name__).warning("%s", warning)
    return None, warning


def _learn_targets(toolchains: Toolchains, targets: Targets) -> None:
    """Add ports the installed toolchains know (e.g. wasip1/wasm) to the URL parser's targets."""
    for goversion in toolchains.installed():
        try:
            targets.learn(toolchains.targets_for(goversion))
        except Exception:  # best effort: the static list still works
            logging.getLogger(__name__).exception("listing targets of %s", goversion)


def _verifier(cfg: configmod.Config, own_key: str) -> Verifier | None:
    """The peers from config, each asked through a verifying client with state in data/verifiers/."""
    if not cfg.verifiers:
        return None
    try:
        peers = parse_peers(cfg.verifiers)
    except ValueError as e:
        raise configmod.ConfigError(f"config: {e}") from e
    return Verifier(peers, cfg.data_path / "verifiers", cfg.verify_timeout, note.Verifier.parse(own_key).name)


def create_app(cfg: configmod.Config | None = None) -> Flask:
    """The gobuild web app for a configuration (defaults when None)."""
    cfg = cfg or configmod.load()
    app = Flask("gobuild", template_folder=str(ROOT / "templates"), static_folder=str(ROOT / "static"))
    app.url_map.merge_slashes = False  # we answer // with our own 301, like the original
    app.url_map.strict_slashes = False
    app.extensions["gobuild"] = build_services(cfg)
    app.jinja_env.filters["timestamp"] = lambda t: time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from . import errors, site, tlogviews, views

    errors.register(app)
    app.register_blueprint(site.bp)
    app.register_blueprint(tlogviews.bp)
    app.register_blueprint(views.bp)
    return app
