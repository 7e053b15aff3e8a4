"""Checking a module's h1: hash against a Go checksum database (GOSUMDB), as the go command does.

The database is reached the go command's way (cmd/go/internal/modfetch/sumdb.go): an explicit
URL in GOSUMDB wins; else the first module proxy that answers 200 for /sumdb/<name>/supported
serves it; else it is asked directly at https://<name>. Every answer is verified by the tlog
client: the signed tree head, its consistency with the last head we accepted, and the record's
inclusion in the tree.
"""

from __future__ import annotations

import logging
import re
import threading
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import requests

from . import module
from .failures import BuildError, TemporaryFailure
from .goproxy import parse_goproxy
from .tlog import client as tlogclient
from .tlog import note

log = logging.getLogger(__name__)

# The go command's built-in key for its default checksum database (knownGOSUMDB in
# cmd/go/internal/modfetch/key.go). Only used when GOSUMDB names that database without a key,
# or when it is unset and there is no Go to ask (`go env GOSUMDB`); the one place it is spelled.
KNOWN_SUMDB_KEY = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"

# A database name is host[:port][/path], as Go requires of "https://" + name.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*(:[0-9]+)?(/[A-Za-z0-9._~-]+)*")


class SumDBConfigError(ValueError):
    """A GOSUMDB value that cannot be used."""


class VerificationFailed(BuildError):
    """The checksum database refutes or cannot vouch for a download: nothing is installed."""

    status = 502
    code = "verification-failed"


class ChecksumMismatch(VerificationFailed):
    """The downloaded hash differs from the one in the checksum database."""

    code = "checksum-mismatch"


class SumDBUnavailable(TemporaryFailure):
    """The checksum database (or the proxy in front of it) could not be reached; try again later."""


@dataclass(frozen=True)
class SumDBSetting:
    """A parsed GOSUMDB other than "off": the verifier key and an optional explicit URL."""

    key: str
    url: str = ""

    @property
    def name(self) -> str:
        """The database name, the first field of the key."""
        return self.key.split("+", 1)[0]


def parse_gosumdb(value: str) -> SumDBSetting | None:
    """Parse GOSUMDB like the go command: "off" (None), or "<key or known name> [<url>]"."""
    fields = value.split()
    if fields == ["off"]:
        return None
    if not fields:
        raise SumDBConfigError("missing GOSUMDB")
    if len(fields) > 2:
        raise SumDBConfigError(f"invalid GOSUMDB {value!r}: too many fields")
    key = KNOWN_SUMDB_KEY if fields[0] == _known_name() else fields[0]
    try:
        name = note.Verifier.parse(key).name
    except note.KeyFormatError as e:
        raise SumDBConfigError(f"invalid GOSUMDB {value!r}: {e}") from None
    if not _NAME_RE.fullmatch(name) or ".." in name:
        raise SumDBConfigError(f"invalid sumdb name (must be host[/path]): {name}")
    url = fields[1].rstrip("/") if len(fields) == 2 else ""
    if url and not url.startswith(("http://", "https://")):
        raise SumDBConfigError(f"invalid GOSUMDB URL {url!r}: must be http or https")
    return SumDBSetting(key, url)


def _known_name() -> str:
    """The name of the go command's default checksum database."""
    return KNOWN_SUMDB_KEY.split("+", 1)[0]


def configured_gosumdb(environment: Sequence[str]) -> str:
    """GOSUMDB from the config's environment entries, else `go env GOSUMDB`, else the go default."""
    value = ""
    for kv in environment:
        key, _, v = kv.partition("=")
        if key == "GOSUMDB":
            value = v  # later entries win, as they do in the go commands' environment
    return value.strip() or _go_env_gosumdb() or _known_name()


def _go_env_gosumdb() -> str:
    """What the Go on PATH uses as GOSUMDB, "" if there is none to ask."""
    from .gocmd import host_go_env

    return host_go_env("GOSUMDB")


class SumDB:
    """One checksum database, verified with the tlog client; safe for concurrent use."""

    def __init__(self, setting: SumDBSetting, goproxy: str, state_dir: Path, timeout: float = 30.0,
                 session: requests.Session | None = None) -> None:
        self.setting = setting
        self.proxies = parse_goproxy(goproxy)
        self.state_dir = state_dir
        self.timeout = timeout
        if session is None:
            session = requests.Session()
            session.headers["User-Agent"] = "gobuild"
        self.session = session
        self._lock = threading.Lock()
        self._client: tlogclient.Client | None = None

    @property
    def name(self) -> str:
        """The database name, e.g. as it appears in error messages."""
        return self.setting.name

    def check(self, path: str, version: str, h1: str) -> None:
        """Return if the database lists h1 for path@version; else raise a VerificationFailed."""
        lines = self.lookup(path, version)
        if f"{path} {version} {h1}" in lines:
            return
        if not lines:
            raise VerificationFailed(f"verifying {path}@{version}: {self.name} has no hash for it")
        want = lines[0].split(" ", 2)[2]
        raise ChecksumMismatch(f"verifying {path}@{version}: checksum mismatch: downloaded {h1}, "
                               f"{self.name} has {want}; refusing it (SECURITY ERROR)")

    def lookup(self, path: str, version: str) -> list[str]:
        """The verified go.sum lines for path@version (not its /go.mod line), as Go's Client.Lookup."""
        key = module.escape_path(path) + "@" + module.escape_version(version)
        client = self._tlog_client()
        what = f"{path}@{version}"
        try:
            _, text = client.lookup(key)
        except tlogclient.FetchError as e:
            if e.server_status in (404, 410):
                raise VerificationFailed(f"verifying {what}: not in checksum database {self.name}") from e
            raise SumDBUnavailable(f"verifying {what}: checksum database {self.name}: {self._redact(e)}") from e
        except tlogclient.SecurityError as e:
            log.error("checksum database %s misbehaves:\n%s", self.name, e)
            raise VerificationFailed(f"verifying {what}: checksum database {self.name} forked its log") from e
        except tlogclient.ClientError as e:
            raise VerificationFailed(f"verifying {what}: checksum database {self.name}: {self._redact(e)}") from e
        prefix = f"{path} {version} "
        return [line for line in text.decode("utf-8", "replace").split("\n") if line.startswith(prefix)]

    def _tlog_client(self) -> tlogclient.Client:
        """The tlog client, created once the database's URL is known."""
        with self._lock:
            if self._client is None:
                self._client = tlogclient.Client(self.base_url(), self.setting.key, self.state_dir / self.name,
                                                 session=self.session, timeout=self.timeout)
            return self._client

    def base_url(self) -> str:
        """Where to reach the database: the explicit URL, a proxy that supports it, or https://<name>."""
        if self.setting.url:
            return self.setting.url
        failure = ""
        for base, fall_through in self.proxies:
            if base == "off":
                break
            status, detail = self._supported(base)
            if status == 200:
                return f"{base}/sumdb/{self.name}"
            if status in (404, 410):
                continue
            failure = detail
            if not fall_through:
                break
        if failure:
            raise SumDBUnavailable(f"checksum database {self.name}: {failure}")
        return f"https://{self.name}"

    def _supported(self, base: str) -> tuple[int, str]:
        """Status of <proxy>/sumdb/<name>/supported (0 for a connection failure), and a description."""
        url = f"{base}/sumdb/{self.name}/supported"
        shown = self._redact(url)
        try:
            with self.session.get(url, timeout=self.timeout, stream=True) as resp:
                return resp.status_code, f"{shown}: {resp.status_code} {resp.reason}"
        except requests.RequestException as e:
            return 0, f"{shown}: {type(e).__name__}"

    def _redact(self, text: object) -> str:
        """text with the passwords of proxy URLs hidden: messages end up in pages and logs."""
        out = str(text)
        for base, _ in self.proxies:
            parts = urllib.parse.urlsplit(base)
            if parts.password is not None:
                out = out.replace(f":{parts.password}@", ":xxxxx@")
        return out
