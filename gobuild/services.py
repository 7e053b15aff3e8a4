"""The composition root: every service of a server, built from its config and handed what it needs.

The config is checked completely first (proxies, GOSUMDB, local toolchains, signer key, verifiers);
only then is anything created on disk, so a config error never leaves a data directory behind.
"""

from __future__ import annotations

import logging
import shlex
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from . import proxyauth
from .builds import Builder, Coordinator
from .clients import BadClient, Network, parse_bad_clients, parse_networks
from .compiler import BuildSettings, Compiler
from .config import Config, ConfigError
from .eviction import BinaryCache
from .gocmd import GoPaths, GoRunner, Sandbox, find_sandbox
from .goproxy import GoProxyClient, goproxy_for_go
from .metrics import Metrics, TimedLog
from .ratelimit import RateLimiter, parse_limits
from .spec import BuildSpec, Record, SpecError
from .store import Store
from .sumdb import SumDB, SumDBConfigError, SumDBSetting, configured_gosumdb, parse_gosumdb
from .targets import Targets
from .tlog import note
from .tlog.server import TransparencyLog, load_or_create_signer
from .toolchains import DOWNLOAD_TIMEOUT, Toolchains, discover_local, host_platform, read_goversion
from .urls import tlog_url
from .verify import Peer, Peers, parse_peers
from .web.checkpoints import LogCheckpoints
from .web.live import StreamLimit
from .web.pages import VersionsCache

if TYPE_CHECKING:  # redis and rq are imported only with a queue: together they take ~10 MiB of a server's memory
    import redis

    from .queue import BuildQueue

log = logging.getLogger(__name__)

POPULARITY_RECORDS = 1000  # newest log records counted per target at startup, as the original does
QUEUE_IN_FLIGHT = 256  # builds a coordinator follows on its queue at once (a waiting thread each)
QUEUE_SOCKET_TIMEOUT = 10.0  # seconds for one Redis command (a blocking read waits FOLLOW_BLOCK_MS)
MIN_SECRET = 16  # characters of the shared queue secret


@dataclass
class Services:
    """Everything the views use, built once per app."""

    config: Config
    store: Store
    toolchains: Toolchains
    targets: Targets
    proxy: GoProxyClient
    builder: Builder
    coordinator: Coordinator
    tlog: TransparencyLog
    verifier: Peers | None
    sandbox_warning: str  # "" when builds run sandboxed, else why they do not (shown on the home page)
    streams: StreamLimit  # open live-log streams, each holding a server thread
    waits: StreamLimit  # requests waiting for a build, each holding a server thread
    versions: VersionsCache  # module version lists for the link columns
    metrics: Metrics
    cache: BinaryCache  # which binaries are on disk; evicts and rebuilds them
    limiter: RateLimiter  # build starts per client network
    trusted_proxies: tuple[Network, ...]  # whose X-Forwarded-For names the client
    bad_clients: tuple[BadClient, ...]
    queue: BuildQueue | None = None  # None: builds run in this process
    queue_secret: bytes = b""  # what workers sign their uploads with
    log_checkpoints: LogCheckpoints = field(default_factory=LogCheckpoints)  # where live-log readers resume

    def reload(self, cfg: Config) -> None:
        """Take what can change without a restart from a new config: instance notes, limits, bad clients.

        Everything is checked before anything changes: a bad file keeps the old settings."""
        limits = parse_limits(cfg.rate_limits)
        trusted = parse_networks(cfg.trusted_proxies, "trusted_proxies")
        bad = parse_bad_clients(cfg.bad_clients)
        self.limiter.configure(limits)
        self.trusted_proxies, self.bad_clients = trusted, bad
        self.config = self.config.with_overrides(
            instance_notes_file=cfg.instance_notes_file, rate_limits=cfg.rate_limits,
            trusted_proxies=cfg.trusted_proxies, bad_clients=cfg.bad_clients)
        log.info("reloaded instance notes, rate limits, trusted proxies and bad clients")

    def build_ended(self, spec: BuildSpec, seconds: float, error: BaseException | None) -> None:
        """The coordinator's observer: metrics, and the cache learns of a new binary."""
        self.metrics.build_ended(spec, seconds, error)
        if error is None:
            self.cache.published(spec)

    def build_started(self, spec: BuildSpec, queued_seconds: float) -> None:
        self.metrics.build_started(spec, queued_seconds)

    def recent_builds(self, count: int = 10) -> list[tuple[BuildSpec, str]]:
        """The newest logged builds, newest first: (spec, sum), read from the log's tail."""
        return [(record.spec, record.sum) for record in newest_records(self.tlog, count)]

    def get_command(self, spec: BuildSpec, sum_: str | None, host: str) -> str:
        """The `gobuild get` command that fetches and verifies spec through our log."""
        q = shlex.quote
        parts = ["gobuild get", f"-verifierkey {q(self.tlog.verifier_key)}", f"-url {q(tlog_url(f'http://{host}'))}"]
        if sum_:
            parts.append(f"-sum {q(sum_)}")
        parts += [f"-target {q(f'{spec.goos}/{spec.goarch}')}", f"-goversion {q(spec.goversion)}"]
        if spec.stripped:
            parts.append("-stripped")
        parts.append(q(f"{spec.module}@{spec.version}{'' if spec.dir == '/' else spec.dir}"))
        return " ".join(parts)


@dataclass(frozen=True)
class Checked:
    """What the config says, parsed and checked, before anything exists on disk."""

    go_proxy: str  # the GOPROXY the go commands get
    proxy: GoProxyClient  # for module lists and versions
    local_toolchains: dict[str, str]  # goversion -> GOROOT, each version confirmed by its go binary
    toolchain_proxy: GoProxyClient | None  # None: only local toolchains (GOPROXY=off or no downloads here)
    platform: tuple[str, str] | None  # the GOOS/GOARCH of toolchain downloads
    gosumdb: SumDBSetting | None  # None: GOSUMDB=off
    signer: str | None  # from signer_key_file; None: the one in <data_dir>/tlog, created on first start
    peers: list[Peer]
    sandbox: Sandbox | None  # None: builds are not isolated
    sandbox_warning: str  # why not, for the log and the home page ("" when sandboxed)
    limiter: RateLimiter
    trusted_proxies: tuple[Network, ...]
    bad_clients: tuple[BadClient, ...]
    queue_secret: bytes  # b"" without a queue


@dataclass(frozen=True)
class WorkerServices:
    """What `gobuild worker` needs: the compiler with this machine's toolchains and caches, the queue."""

    compiler: Compiler
    conn: redis.Redis
    secret: bytes
    targets: Targets
    goversions: tuple[str, ...]  # the only Go versions it builds; () any
    heartbeat: int


def newest_records(tlog: TransparencyLog, count: int) -> Iterator[Record]:
    """The last count records of the log, newest first (records that do not parse are skipped)."""
    size = tlog.size()
    for n in range(size - 1, max(size - count, 0) - 1, -1):
        try:
            yield Record.parse(tlog.record(n))
        except SpecError:
            continue


def check(cfg: Config) -> Checked:
    """Parse and check every part of the config that can be wrong; ConfigError says which."""
    try:
        go_proxy = goproxy_for_go(cfg.goproxy)
        proxy = GoProxyClient(cfg.goproxy, timeout=cfg.proxy_timeout)
        # A toolchain zip is ~70 MB: allow a slow link more time than a module zip gets.
        toolchain_proxy = GoProxyClient(cfg.goproxy, timeout=cfg.proxy_timeout, download_timeout=DOWNLOAD_TIMEOUT)
        gosumdb = parse_gosumdb(configured_gosumdb(cfg.environment))
        peers = parse_peers(cfg.verifiers)
    except (ValueError, SumDBConfigError) as e:
        raise ConfigError(f"config: {e}") from e
    if cfg.goproxy_auth_file:
        proxy.session.auth = toolchain_proxy.session.auth = proxyauth.NetrcAuth(cfg.goproxy_auth_file)
    limiter = RateLimiter(parse_limits(cfg.rate_limits))
    trusted = parse_networks(cfg.trusted_proxies, "trusted_proxies")
    bad_clients = parse_bad_clients(cfg.bad_clients)
    signer = None
    if cfg.signer_key_file:
        try:
            signer, _ = load_or_create_signer(cfg.data_path / "tlog", cfg.log_name, Path(cfg.signer_key_file))
        except (OSError, ValueError) as e:
            raise ConfigError(f"config: signer key: {e}") from e
    platform = _download_platform()
    if platform is not None and all(base == "off" for base, _ in toolchain_proxy.proxies):
        log.warning("GOPROXY=off: only local toolchains can be used")
        platform = None
    if platform is not None and gosumdb is None:
        log.warning("GOSUMDB=off: downloaded Go toolchains will not be verified")
    sandbox, sandbox_warning = _sandbox(cfg)
    return Checked(go_proxy, proxy, _local_toolchains(cfg.toolchains), toolchain_proxy if platform else None,
                   platform, gosumdb, signer, peers, sandbox, sandbox_warning, limiter, trusted, bad_clients,
                   _queue_secret(cfg))


def _queue_secret(cfg: Config) -> bytes:
    """The secret shared with the queue workers (b"" without a queue)."""
    if not cfg.queue_secret_file:
        return b""
    try:
        secret = Path(cfg.queue_secret_file).read_bytes().strip()
    except OSError as e:
        raise ConfigError(f"config: queue_secret_file: {e.strerror or e}") from e
    if len(secret) < MIN_SECRET:
        raise ConfigError(f"config: queue_secret_file must hold at least {MIN_SECRET} characters")
    return secret


def _redis(cfg: Config) -> redis.Redis:
    """A connection pool to the queue's Redis (nothing is sent yet: a server that is down now may come back)."""
    import redis

    try:
        return redis.Redis.from_url(cfg.queue, socket_timeout=QUEUE_SOCKET_TIMEOUT, socket_connect_timeout=2.0)
    except ValueError as e:
        raise ConfigError(f"config: queue: {e}") from e


def _sandbox(cfg: Config) -> tuple[Sandbox | None, str]:
    """The build sandbox the config asks for, and the warning to show when builds are not isolated."""
    if cfg.sandbox == "off":
        sandbox, why = None, 'the config says "sandbox": "off"'
    else:
        sandbox, why = find_sandbox()
        if sandbox is None and cfg.sandbox == "required":
            raise ConfigError(f"config: sandbox is required, but {why}")
    if sandbox is not None:
        return sandbox, ""
    warning = (f"builds are NOT isolated ({why}): go commands run as this server's user and can read its "
               "files; install bubblewrap (apt-get install bubblewrap) before offering this instance to others")
    log.warning("%s", warning)
    return None, warning


def _download_platform() -> tuple[str, str] | None:
    """This machine's GOOS/GOARCH if Go toolchains can be downloaded for it."""
    try:
        return host_platform()
    except ConfigError as e:
        log.warning("%s: only local toolchains can be used", e)
        return None


def _local_toolchains(configured: dict[str, str]) -> dict[str, str]:
    """The configured toolchains (else the Go on PATH), each checked to be the version it claims."""
    local = dict(configured) or discover_local()
    for goversion, goroot in local.items():
        try:
            actual = read_goversion(Path(goroot))  # a temporary HOME: nothing is written to data_dir yet
        except ConfigError as e:
            raise ConfigError(f"config: {e}") from e
        if actual != goversion:
            raise ConfigError(f"config: toolchain {goversion} at {goroot} is really {actual}")
    return local


def build_services(cfg: Config) -> Services:
    """Check the config, then open the data dir and set up every service."""
    checked = check(cfg)
    metrics = Metrics()
    for client in (checked.proxy, checked.toolchain_proxy):
        if client is not None:
            client.session.hooks["response"].append(metrics.proxy_response)
    store = Store(cfg.data_path)
    targets = Targets()
    toolchains = _toolchains(cfg, checked, targets)
    threading.Thread(target=_learn_targets, args=(toolchains, targets), daemon=True).start()
    signer = checked.signer or load_or_create_signer(cfg.data_path / "tlog", cfg.log_name, None)[0]
    tlog = TransparencyLog(cfg.data_path / "tlog", signer)
    for record in newest_records(tlog, POPULARITY_RECORDS):  # the target order remembers across restarts
        targets.count((record.spec.goos, record.spec.goarch))
    verifier = None
    if checked.peers:
        own_name = note.Verifier.parse(tlog.verifier_key).name
        verifier = Peers(checked.peers, cfg.data_path / "verifiers", cfg.verify_timeout, own_name,
                            observe=metrics.verified)
    environment = proxyauth.go_environment(cfg.goproxy_auth_file, cfg.environment)
    settings = BuildSettings(checked.go_proxy, environment, cfg.build_timeout, cfg.prepare_timeout,
                             checked.sandbox)
    queue = None
    if cfg.queue:
        from .queue import BuildQueue

        queue = BuildQueue(_redis(cfg), store, cfg.queue_upload_url or f"http://{cfg.listen}",
                           cfg.build_timeout + 2 * cfg.prepare_timeout, cfg.queue_wait_seconds,
                           on_alarm=metrics.reproducibility_alarm)
    builder = Builder(settings, store, toolchains, cfg.cache_path, TimedLog(tlog, metrics), verifier,
                      compile=cfg.build, targets=targets, remote=queue)
    cache = BinaryCache(store, builder, metrics, cfg.binary_cache_max_mb << 20,
                        cfg.binary_cache_max_age_hours * 3600, max_rebuilds=cfg.max_builds)
    if cache.max_age:
        threading.Thread(target=cache.expire_forever, args=(min(cache.max_age / 4, 3600.0),), name="expire",
                         daemon=True).start()
    services = Services(
        config=cfg,
        store=store,
        toolchains=toolchains,
        targets=targets,
        proxy=checked.proxy,
        builder=builder,
        coordinator=Coordinator(builder, QUEUE_IN_FLIGHT if queue else cfg.max_builds,
                                admit=queue.check_available if queue else lambda: None,
                                remote_position=queue.position if queue else lambda spec: 0),
        tlog=tlog,
        verifier=verifier,
        sandbox_warning=checked.sandbox_warning,
        streams=StreamLimit(cfg.stream_limit),
        waits=StreamLimit(cfg.wait_limit),
        versions=VersionsCache(checked.proxy.list),
        metrics=metrics,
        cache=cache,
        limiter=checked.limiter,
        trusted_proxies=checked.trusted_proxies,
        bad_clients=checked.bad_clients,
        queue=queue,
        queue_secret=checked.queue_secret,
    )
    services.coordinator.observer = services
    _watch(services)
    return services


def build_worker_services(cfg: Config) -> WorkerServices:
    """Check the config, then set up what a queue worker needs (its data_dir holds only toolchains and temp files)."""
    if not cfg.queue:
        raise ConfigError("config: a worker needs queue (the coordinator's redis:// URL)")
    checked = check(cfg)
    targets = Targets()
    toolchains = _toolchains(cfg, checked, targets)
    for goversion in toolchains.installed():
        toolchains.targets_for(goversion)  # the toolchain's ports join targets: specs for them parse
    environment = proxyauth.go_environment(cfg.goproxy_auth_file, cfg.environment)
    settings = BuildSettings(checked.go_proxy, environment, cfg.build_timeout, cfg.prepare_timeout,
                             checked.sandbox)
    compiler = Compiler(settings, toolchains, GoPaths(cfg.data_path, cfg.cache_path))
    return WorkerServices(compiler, _redis(cfg), checked.queue_secret, targets, cfg.worker_goversions,
                          cfg.queue_heartbeat_seconds)


def _watch(s: Services) -> None:
    """The gauges that read the services' state when scraped."""
    m = s.metrics
    m.watch(m.queued, lambda: s.coordinator.counts()[0])
    m.watch(m.running, lambda: s.coordinator.counts()[1])
    m.watch(m.streams, lambda: s.streams.open)
    m.watch(m.tlog_records, s.tlog.size)
    m.watch(m.cache_bytes, lambda: s.cache.total)


def _toolchains(cfg: Config, checked: Checked, targets: Targets) -> Toolchains:
    """The toolchains of a server: the local ones, downloads from its proxy checked by GOSUMDB."""
    sdk_dir = cfg.data_path / "sdk"
    sumdb = None
    if checked.toolchain_proxy is not None and checked.gosumdb is not None:
        sumdb = SumDB(checked.gosumdb, cfg.goproxy, cfg.data_path / "sumdb", cfg.proxy_timeout)
    return Toolchains(checked.local_toolchains, sdk_dir, checked.toolchain_proxy, sumdb,
                      oldest=cfg.goversion_oldest, stop=cfg.goversion_stop, platform=checked.platform,
                      targets=targets, runner=GoRunner(None, sandbox=checked.sandbox))


def _learn_targets(toolchains: Toolchains, targets: Targets) -> None:
    """Add ports the installed toolchains know (e.g. wasip1/wasm) to the URL parser's targets."""
    for goversion in toolchains.installed():
        try:
            targets.learn(toolchains.targets_for(goversion))
        except Exception:  # best effort: the static list still works
            log.exception("listing targets of %s", goversion)
