"""The server configuration: a JSON file whose every key is optional, parsed once into a frozen dataclass."""

from __future__ import annotations

import json
import os
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any


class ConfigError(Exception):
    """The configuration cannot be used; the message is one line for the operator."""


def _help(text: str, **kw: Any) -> Any:
    """A dataclass field with its help text, shown by `gobuild config`."""
    return field(metadata={"help": text}, **kw)


@dataclass(frozen=True)
class Config:
    """Every setting of a gobuild server, with its default."""

    listen: str = _help("host:port of the HTTP listener", default="127.0.0.1:8000")
    data_dir: str = _help("directory for builds, logs, caches and toolchains", default="data")
    cache_dir: str = _help("module download and build caches; default: <data_dir>/cache", default="")
    goproxy: str = _help(
        "GOPROXY list for module downloads; default: the GOPROXY environment variable, "
        "else `go env GOPROXY`; 'direct' is always dropped", default="")
    environment: tuple[str, ...] = _help(
        "extra KEY=VALUE added to every go command, e.g. GOSUMDB=off", default=())
    toolchains: dict[str, str] = _help(
        "goversion -> local GOROOT, e.g. {\"go1.26.8\": \"/usr/local/go\"}; "
        "with none, the Go on PATH is registered under its own version", default_factory=dict)
    max_builds: int = _help("concurrent builds; 0 means CPUs+1", default=0)
    build_timeout: float = _help("seconds a build may run before it is killed (temporary failure)", default=900.0)
    prepare_timeout: float = _help("seconds module download and package checks may take", default=300.0)
    proxy_timeout: float = _help("seconds for one request to the module proxy", default=30.0)
    threads: int = _help("waitress worker threads", default=32)
    fast_path: bool = _help("answer immutable URLs (result files, full tiles, versioned static files), "
                            "/tlog/latest and result pages while current from memory without Flask after "
                            "their first request", default=True)
    accel_redirect_prefix: str = _help(
        "behind nginx: send binaries requested through it (X-Gobuild-Accel: 1) as X-Accel-Redirect to this "
        "internal location + the blob's path under <data_dir>/blobs/, e.g. /_blobs/ (deploy/nginx.conf); "
        "empty: send the file", default="")
    max_streams: int = _help(
        "live build logs streamed at once (each holds a waitress thread); past it pages poll instead; "
        "0 means 3/4 of threads, must stay below threads", default=0)
    max_waiting: int = _help(
        "requests waiting at once for a build to finish (each holds a waitress thread); past it they get "
        "503 with Retry-After while the build goes on; 0 means 1/4 of threads, must stay below threads", default=0)
    instance_notes_file: str = _help("file whose text the home page shows as notes about this instance", default="")
    example: str = _help(
        "the command the home page's examples use, as module[@version/dir], "
        "e.g. golang.org/x/tools@latest/cmd/stringer; "
        "default: the newest build in the log, else golang.org/x/example/hello", default="")
    goversion_oldest: str = _help("refuse Go versions older than this, e.g. go1.21", default="")
    goversion_stop: str = _help("refuse this Go version and newer, e.g. go1.28 (also for 'latest')", default="")
    signer_key_file: str = _help(
        "file with the transparency log's signer key (PRIVATE+KEY+...); "
        "default: created on first start in <data_dir>/tlog/", default="")
    tlog_name: str = _help("name in the log's keys; default: the host part of listen", default="")
    verifiers: tuple[dict[str, str], ...] = _help(
        "other gobuild instances that must build the same sum before a build is logged: "
        "[{\"key\": \"<their verifier key>\", \"url\": \"http://peer:8000/tlog\"}]", default=())
    sandbox: str = _help(
        "isolate every go command with bubblewrap (bwrap): \"auto\" when it works here (else a warning), "
        "\"required\" (refuse to start without), \"off\"", default="auto")
    build: bool = _help("false: build nothing here, accept a build only when all verifiers agree "
                        "and serve their binary (verify-only mode)", default=True)
    verify_timeout: float = _help("seconds to wait for each verifier (it may build on demand)", default=1200.0)
    admin_listen: str = _help("host:port of the admin listener (metrics, pending builds, failures); keep it "
                              "private; \"\" turns it off", default="127.0.0.1:8001")
    rate_limits: bool | dict[str, Any] = _help(
        "build requests per client network and window: true (the defaults), false (off), or an object "
        "{\"windows\": [seconds...], \"ipv4_prefixes\": [...], \"ipv6_prefixes\": [...], "
        "\"recent\": [[per prefix] per window], \"old\": [...]}", default=True)
    trusted_proxies: tuple[str, ...] = _help(
        "networks (CIDR) of reverse proxies whose X-Forwarded-For names the client", default=())
    bad_clients: tuple[dict[str, str], ...] = _help(
        "clients refused with 403: [{\"user_agent\": \"substring\", \"networks\": \"cidr,cidr\"}]; "
        "every given part must match, networks are required", default=())
    module_prefixes: tuple[str, ...] = _help(
        "build only modules under these path prefixes, e.g. [\"example.com/team\"]; empty: any module",
        default=())
    binary_cache_max_mb: int = _help(
        "evict the least recently used binaries when they take more than this (MiB); 0: no cap; "
        "an evicted binary is rebuilt on request and must reproduce its logged sum", default=0)
    binary_cache_max_age_hours: float = _help(
        "evict binaries not downloaded for this many hours; 0: never", default=0.0)
    goproxy_auth_file: str = _help(
        "netrc file with the module proxy's credentials (machine <host> login <user> password <secret>), "
        "for a private proxy; never shown or logged", default="")
    shutdown_timeout: float = _help("seconds SIGTERM lets running builds finish before killing them",
                                    default=60.0)
    log_format: str = _help("server log lines: text or json (one object per line)", default="text")
    queue: str = _help(
        "redis://host:port/db of a build queue (RQ on Redis): this server enqueues its builds there and "
        "`gobuild worker --config FILE` processes on any machine run them; \"\": build in this process",
        default="")
    queue_secret_file: str = _help(
        "file with the secret this server and its workers share (at least 16 characters): workers sign the "
        "binaries they upload with it; required with queue", default="")
    queue_upload_url: str = _help(
        "the base URL workers reach this server's own listener at (not nginx, which answers 404 to /_queue/), "
        "e.g. http://coordinator.internal:8000; default http://<listen>", default="")
    queue_heartbeat_seconds: int = _help(
        "a worker reports on its build this often; a build whose worker missed two reports is taken up "
        "by another worker", default=5)
    queue_max_upload_mb: int = _help("largest binary a worker may upload (MiB)", default=512)
    queue_wait_seconds: int = _help(
        "a queued build no worker took within this many seconds (plus the build's own time limit) fails as "
        "temporary (503) and is taken off the queue; the next request queues it anew", default=900)
    worker_goversions: tuple[str, ...] = _help(
        "gobuild worker: build only these Go versions (from their own queues); empty: any version",
        default=())

    def with_overrides(self, **changes: Any) -> Config:
        """A copy with some keys changed (validated like the file)."""
        return _validate(replace(self, **changes))

    @property
    def data_path(self) -> Path:
        """data_dir as an absolute path."""
        return Path(self.data_dir).absolute()

    @property
    def cache_path(self) -> Path:
        """cache_dir as an absolute path."""
        return Path(self.cache_dir).absolute() if self.cache_dir else self.data_path / "cache"

    @property
    def log_name(self) -> str:
        """The transparency log's key name: tlog_name, else the host of listen."""
        return self.tlog_name or self.host_port[0] or "localhost"

    @property
    def stream_limit(self) -> int:
        """How many live log streams may be open at once (max_streams, else 3/4 of threads)."""
        return self.max_streams or max(1, self.threads * 3 // 4)

    @property
    def wait_limit(self) -> int:
        """How many requests may wait for a build at once (max_waiting, else 1/4 of threads)."""
        return self.max_waiting or max(1, self.threads // 4)

    @property
    def host_port(self) -> tuple[str, int]:
        """listen split into host and port."""
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


_ENV_NAME_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


def load(path: str | None = None, **overrides: Any) -> Config:
    """Read the config file (if any), apply overrides, fill in derived defaults and validate."""
    raw: dict[str, Any] = {}
    if path:
        try:
            raw = json.loads(Path(path).read_text())
        except OSError as e:
            raise ConfigError(f"config {path}: {e.strerror}") from e
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"config {path}: not valid JSON: {e}") from e
        if not isinstance(raw, dict):
            raise ConfigError(f"config {path}: must be a JSON object")
    raw = {k: v for k, v in raw.items() if not k.startswith("_")}  # "_key" entries are comments
    known = {f.name: f for f in fields(Config)}
    for key in raw:
        if key not in known:
            raise ConfigError(f"config: unknown key {key!r} (known: {', '.join(sorted(known))})")
    values = {k: _coerce(k, v, known[k].type) for k, v in raw.items()}
    values.update({k: v for k, v in overrides.items() if v is not None})
    cfg = Config(**values)
    if not cfg.goproxy:
        cfg = replace(cfg, goproxy=default_goproxy())
    return _validate(cfg)


_JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "str": str, "int": int, "float": (int, float), "bool": bool, "tuple[str, ...]": list,
    "bool | dict[str, Any]": (bool, dict), "dict[str, str]": dict, "tuple[dict[str, str], ...]": list,
}


def _coerce(key: str, value: Any, typename: Any) -> Any:
    """Check a JSON value against the field's type; lists become tuples."""
    expected = _JSON_TYPES[str(typename)]
    takes_bool = expected is bool or (isinstance(expected, tuple) and bool in expected)
    if not isinstance(value, expected) or (isinstance(value, bool) and not takes_bool):
        raise ConfigError(f"config: {key} has the wrong type ({type(value).__name__})")
    if isinstance(value, list):
        if "dict" in str(typename):
            if not all(isinstance(v, dict) and _str_map(v) for v in value):
                raise ConfigError(f"config: {key} must be a list of objects with string values")
        elif not all(isinstance(v, str) for v in value):
            raise ConfigError(f"config: {key} must be a list of strings")
        return tuple(value)
    if isinstance(value, dict) and "Any" not in str(typename) and not _str_map(value):
        raise ConfigError(f"config: {key} must map strings to strings")
    return value


def _str_map(d: dict[Any, Any]) -> bool:
    return all(isinstance(v, str) for v in d.values())


def _validate(cfg: Config) -> Config:
    """Reject values that cannot work, with a message naming the key."""
    if _bad_listen(cfg.listen):
        raise ConfigError(f"config: listen {cfg.listen!r} must be host:port")
    for kv in cfg.environment:
        name, eq, _ = kv.partition("=")
        if not eq or not name or not set(name) <= _ENV_NAME_CHARS:
            raise ConfigError(f"config: environment entry {kv!r} must be KEY=VALUE")
    if cfg.max_builds < 0 or cfg.threads < 4:
        raise ConfigError("config: max_builds must be >= 0 and threads >= 4")
    if not 0 <= cfg.max_streams < cfg.threads:
        raise ConfigError("config: max_streams must be >= 0 and below threads (0: 3/4 of threads)")
    if not 0 <= cfg.max_waiting < cfg.threads:
        raise ConfigError("config: max_waiting must be >= 0 and below threads (0: 1/4 of threads)")
    if cfg.sandbox not in ("auto", "required", "off"):
        raise ConfigError(f"config: sandbox must be \"auto\", \"required\" or \"off\", not {cfg.sandbox!r}")
    if cfg.build_timeout <= 0 or cfg.prepare_timeout <= 0 or cfg.proxy_timeout <= 0:
        raise ConfigError("config: timeouts must be positive")
    for key in ("goversion_oldest", "goversion_stop"):
        value = getattr(cfg, key)
        if value and not _is_goversion(value):
            raise ConfigError(f"config: {key} {value!r} is not a Go version like go1.21")
    for v in cfg.verifiers:
        if set(v) - {"key", "url"} or "key" not in v:
            raise ConfigError(f"config: verifiers entries are {{\"key\": ..., \"url\": ...}}, got {v}")
    if cfg.admin_listen and (_bad_listen(cfg.admin_listen) or cfg.admin_listen == cfg.listen):
        raise ConfigError(f"config: admin_listen {cfg.admin_listen!r} must be host:port, not the public listen")
    if cfg.log_format not in ("text", "json"):
        raise ConfigError("config: log_format must be text or json")
    if cfg.binary_cache_max_mb < 0 or cfg.binary_cache_max_age_hours < 0 or cfg.shutdown_timeout < 0:
        raise ConfigError("config: binary_cache_max_mb, binary_cache_max_age_hours and shutdown_timeout "
                          "must be >= 0")
    if any(not p.strip("/") for p in cfg.module_prefixes):
        raise ConfigError("config: module_prefixes entries must be module path prefixes")
    if not cfg.build and not cfg.verifiers:
        raise ConfigError("config: build is false (verify-only) but no verifiers are configured")
    _validate_queue(cfg)
    if cfg.max_builds == 0:
        cfg = replace(cfg, max_builds=(os.cpu_count() or 1) + 1)
    return cfg


def _validate_queue(cfg: Config) -> None:
    """The queue keys: a Redis URL with its secret file, sane limits, Go versions."""
    if cfg.queue and not cfg.queue.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"config: queue {cfg.queue!r} must be a redis://, rediss:// or unix:// URL")
    if cfg.queue and not cfg.queue_secret_file:
        raise ConfigError("config: queue needs queue_secret_file (the secret shared with the workers)")
    if cfg.queue and not cfg.build:
        raise ConfigError("config: queue and build false (verify-only) do not go together")
    if cfg.queue_upload_url and not cfg.queue_upload_url.startswith(("http://", "https://")):
        raise ConfigError("config: queue_upload_url must be an http:// or https:// URL")
    if min(cfg.queue_heartbeat_seconds, cfg.queue_max_upload_mb, cfg.queue_wait_seconds) < 1:
        raise ConfigError("config: queue_heartbeat_seconds, queue_max_upload_mb and queue_wait_seconds must be >= 1")
    for v in cfg.worker_goversions:
        if not _is_goversion(v):
            raise ConfigError(f"config: worker_goversions entry {v!r} is not a Go version like go1.26.8")


def _bad_listen(listen: str) -> bool:
    host, _, port = listen.rpartition(":")
    return not host or not (port.isascii() and port.isdigit()) or not 0 <= int(port) < 65536


def _is_goversion(s: str) -> bool:
    from .spec import GoVersion, SpecError

    try:
        GoVersion.parse(s)
    except SpecError:
        return False
    return True


def default_goproxy() -> str:
    """GOPROXY from the environment, else what the Go on PATH says."""
    env = os.environ.get("GOPROXY", "").strip()
    if env:
        return env
    from .gocmd import host_go_env

    if value := host_go_env("GOPROXY"):
        return value
    raise ConfigError("config: no goproxy configured, GOPROXY is unset and no Go on PATH to ask")


def example() -> dict[str, Any]:
    """The defaults with their help texts ("_key" comment entries), as in config.example.json."""
    out: dict[str, Any] = {}
    for f in fields(Config):
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[operator]
        out[f"_{f.name}"] = f.metadata["help"]
        out[f.name] = list(default) if isinstance(default, tuple) else default
    return out
