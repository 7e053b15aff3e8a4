"""GOPROXY protocol client: list, latest, info, mod and zip from one or more module proxies.

Follows the go command (cmd/go/internal/modfetch/proxy.go): the same GOPROXY list syntax,
the same fall-through rules, the same URL escaping, and version queries ("latest", "v1.2",
"<v1.3.0", ...) answered the way `go list -m mod@query` answers them (modload/query.go):
releases before pre-releases before the proxy's @latest, +incompatible versions skipped when
the newest compatible one has a go.mod, and versions retracted by the go.mod of the latest
version skipped unless asked for by name.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import json
import os
import pathlib
import re
import socket
import tempfile
import threading
import urllib.parse
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import requests

from gobuild import gomod, module
from gobuild.durable import fsync_dir
from gobuild.errors import GobuildError

# Limits from the go command (codehost.MaxZipFile, modfetch's MaxGoMod): anything larger is
# refused by go anyway, so a larger answer is a broken or hostile proxy.
MAX_ZIP_BYTES = 500 << 20
MAX_SMALL_BYTES = 16 << 20  # .mod, .info, list, @latest
_CHUNK = 1 << 16
_MOD_CACHE_SIZE = 512  # .mod files of exact versions never change: keep the recent ones

T = TypeVar("T")
_RETRYABLE_4XX = (408, 425, 429)  # timeout, too early, rate limited: a proxy that may answer later, not a refusal


class GoProxyError(GobuildError):
    """Base of the errors from talking to module proxies."""


class ModuleNotFound(GoProxyError):
    """Every proxy asked answered 404/410: no such module or version (the user's problem)."""

    status = 404
    code = "not-found"


class ProxyUnavailable(GoProxyError):
    """A proxy failed: 5xx, connection error, timeout, malformed answer, or GOPROXY=off."""

    status = 503
    code = "proxy-unavailable"


class ProxyRefused(ProxyUnavailable):
    """A proxy answered a 4xx other than 404/410 (e.g. 403: it will not serve this module or version). Like an
    outage it is not stored and go does not fall through on ','; unlike one, trying again soon will not help."""

    status = 502
    code = "proxy-refused"


@dataclass(frozen=True)
class VersionInfo:
    """A proxy's .info answer: the canonical version and its commit time (RFC 3339)."""

    version: str
    time: str


@dataclass(frozen=True)
class _Query:
    """modload's queryMatcher: which listed versions a query takes, and which one it prefers."""

    prefix: str = ""
    keep: Callable[[str], bool] = lambda v: True
    prefer_lower: bool = False
    prefer_incompatible: bool = False
    may_use_latest: bool = False


_LATEST = _Query(may_use_latest=True)


def _parse_query(module_path: str, query: str) -> _Query | None:
    """The matcher for a version query; None for a revision (exact version, branch, tag, commit).

    ValueError for a query go refuses (an invalid or ambiguous version in a range).
    """
    if query == "latest":
        return _LATEST
    op = next((o for o in ("<=", ">=", "<", ">") if query.startswith(o)), "")
    v = query[len(op):]
    if not module.is_valid_semver(v):
        if op:
            raise ValueError(f"invalid semantic version {v!r} in range {query!r}")
        return None
    is_prefix = module.semver_canonical(v) + module.semver_build(v) != v  # "v1", "v1.2"
    if op in ("<=", ">") and is_prefix:
        raise ValueError(f"ambiguous semantic version {v!r} in range {query!r}")  # does <=v1.2 allow v1.2.3?
    split = module.split_path_version(module_path)
    foreign = not module.match_path_major(v, split[1] if split else "")
    cmp = module.compare_semver
    if op:
        keep = {"<=": lambda w: cmp(w, v) <= 0, "<": lambda w: cmp(w, v) < 0,
                ">=": lambda w: cmp(w, v) >= 0, ">": lambda w: cmp(w, v) > 0}[op]
        return _Query(keep=keep, prefer_lower=op[0] == ">", prefer_incompatible=foreign)
    if is_prefix:
        # As go (golang.org/issue/31972): "v1.2" does not match pre-releases of v1.2.0.
        return _Query(prefix=v + ".", keep=lambda w: cmp(w, v) >= 0, prefer_incompatible=foreign)
    return None


# ---------------------------------------------------------------------------- GOPROXY lists


def parse_goproxy(value: str) -> list[tuple[str, bool]]:
    """Parse a GOPROXY value into [(base URL, fall through on any error)] like the go command.

    ',' after an entry falls through only on 404/410, '|' on any error. 'direct' ends the
    list and is dropped (we never reach version control); 'off' ends the list and stays as
    ("off", False). ValueError if no usable entry remains or an entry is not an http(s) URL.
    """
    entries: list[tuple[str, bool]] = []
    rest = value
    while rest:
        cut = min((i for i in (rest.find(","), rest.find("|")) if i >= 0), default=-1)
        if cut >= 0:
            url, fall_through, rest = rest[:cut], rest[cut] == "|", rest[cut + 1 :]
        else:
            url, fall_through, rest = rest, False, ""
        url = url.strip()
        if url == "":
            continue
        if url == "off":
            entries.append(("off", False))
            break
        if url == "direct":
            break  # like go: nothing after "direct" is ever consulted
        entries.append((_proxy_base(url), fall_through))
    if not entries:
        raise ValueError(f"GOPROXY {value!r} names no module proxy (\"direct\" is not supported)")
    return entries


def _proxy_base(url: str) -> str:
    """Normalise one proxy URL: implicit https:// as go adds it, no trailing slash."""
    if any(c in url for c in ".:/") and ":/" not in url and not url.startswith("/"):
        url = "https://" + url
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"invalid proxy URL (must be http or https): {url}")
    if parsed.query or parsed.fragment:
        raise ValueError(f"invalid proxy URL (query or fragment not allowed): {url}")
    return url.rstrip("/")


def goproxy_for_go(value: str) -> str:
    """The GOPROXY value to give go commands: the same proxies and separators, without 'direct'."""
    parts: list[str] = []
    for url, fall_through in parse_goproxy(value):
        parts.append(url)
        parts.append("|" if fall_through else ",")
    return "".join(parts[:-1])


# ---------------------------------------------------------------------------- errors


class _ProxyNotFound(Exception):
    """One proxy answered 404/410 (or GOPROXY=off was reached after nothing was found)."""


class _ProxyFailed(Exception):
    """One proxy failed in a way that is not 'not found'; refused: it answered a 4xx."""

    def __init__(self, message: str, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


def _describe(resp: requests.Response, base: str) -> str:
    """'404 Not Found from <base>' plus the first line of the body, which proxies use for the reason."""
    text = f"{resp.status_code} {resp.reason or ''}".rstrip() + f" from {base}"
    try:
        body = next(resp.iter_content(512), b"")
    except requests.RequestException:
        body = b""
    line = body.decode("utf-8", "replace").strip().split("\n", 1)[0].strip()[:200]
    line = "".join(c if c.isprintable() else "?" for c in line)  # remote text ends up in our pages and logs
    return f"{text}: {line}" if line else text


# ---------------------------------------------------------------------------- client


class GoProxyClient:
    """Talks the GOPROXY protocol to the proxies of one GOPROXY value."""

    def __init__(
        self,
        goproxy: str,
        timeout: float = 30.0,
        session: requests.Session | None = None,
        user_agent: str = "gobuild",
        download_timeout: float = 600.0,
    ) -> None:
        self.proxies = parse_goproxy(goproxy)
        self.timeout = timeout
        # A zip may take long even when every read is quick; bound the whole transfer too.
        self.download_timeout = download_timeout
        self._own_session = session is None
        self.session = session if session is not None else _deadline_session()
        self.user_agent = user_agent
        self._mods: dict[tuple[str, str, str], bytes] = {}
        self._mods_lock = threading.Lock()

    def close(self) -> None:
        """Close the HTTP session if this client created it."""
        if self._own_session:
            self.session.close()

    def __enter__(self) -> GoProxyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ public API

    def list(self, module_path: str) -> list[str]:
        """The tagged versions of a module (no pseudo-versions), ascending semver order."""
        prefix = module.escape_path(module_path)
        return self._try(module_path, lambda base: self._list_at(base, prefix))

    def latest(self, module_path: str) -> VersionInfo:
        """The version `go list -m mod@latest` gives (see the module docstring)."""
        return self.info(module_path, "latest")

    def info(self, module_path: str, version: str) -> VersionInfo:
        """Version and time for a version or query ('latest', 'v1.2', '<v1.3.0', a branch, a commit)."""
        prefix = module.escape_path(module_path)
        try:
            query = _parse_query(module_path, version)
        except ValueError as e:
            raise module.InvalidVersion(f"{module_path}@{version}: {e}") from None
        if query is None:
            module.escape_version(version)  # refuse a bad revision before asking anyone
            return self._try(f"{module_path}@{version}", lambda base: self._stat_at(base, module_path, prefix, version))
        return self._try(f"{module_path}@{version}",
                         lambda base: self._query_at(base, module_path, prefix, version, query))

    def resolve(self, module_path: str, version: str) -> str:
        """The canonical version for a version, a query or 'latest'."""
        return self.info(module_path, version).version

    def mod(self, module_path: str, version: str) -> bytes:
        """The go.mod file of a module version (canonical version required)."""
        self._file_path(module_path, version, ".mod")  # refuse a bad version before asking anyone
        return self._try(f"{module_path}@{version}", lambda base: self._mod_at(base, module_path, version))

    def zip(self, module_path: str, version: str, dest: pathlib.Path) -> None:
        """Download the module zip to dest (streamed via a temp file beside it; atomic rename)."""
        url_path = self._file_path(module_path, version, ".zip")
        self._try(f"{module_path}@{version}", lambda base: self._download(base, url_path, dest))

    # ------------------------------------------------------------------ per-proxy operations

    def _list_at(self, base: str, prefix: str) -> builtins.list[str]:
        """Versions from one proxy's @v/list."""
        return _tagged_versions(self._get_text(base, f"{prefix}/@v/list"))

    def _query_at(self, base: str, module_path: str, prefix: str, text: str, query: _Query) -> VersionInfo:
        """Answer a query against one proxy, skipping retracted versions (modload.queryProxy)."""
        listing = self._get_text(base, f"{prefix}/@v/list")
        untagged = functools.cache(lambda: self._untagged_latest_at(base, module_path, prefix, listing))
        retracted = self._retractions_at(base, module_path, listing, untagged)

        def allowed(v: str) -> bool:
            return not gomod.is_retracted(v, retracted)

        if best := self._pick_at(base, module_path, listing, query, allowed):
            return self._info_at(base, module_path, prefix, best)
        latest = untagged() if query.may_use_latest else None
        if latest is None or not allowed(latest.version):
            raise _ProxyNotFound(f"no matching versions for query {text!r} (from {base})")
        return latest

    def _pick_at(self, base: str, module_path: str, listing: str, query: _Query,
                 allowed: Callable[[str], bool]) -> str:
        """The listed version the query prefers: a release, else a pre-release; "" if none fits."""
        listed = [v for v in _tagged_versions(listing) if v.startswith(query.prefix) and _is_exact(module_path, v)]
        releases, prereleases = self._filter_at(base, module_path, listed, query, allowed)
        for versions in (releases, prereleases):
            if versions:
                return versions[0] if query.prefer_lower else versions[-1]
        return ""

    def _filter_at(self, base: str, module_path: str, versions: builtins.list[str], query: _Query,
                   allowed: Callable[[str], bool]) -> tuple[builtins.list[str], builtins.list[str]]:
        """Releases and pre-releases the query allows (ascending), as modload's filterVersions.

        +incompatible versions sort after all compatible ones; they count only if the newest
        allowed compatible version has no go.mod of its own (golang.org/issue/34165).
        """
        releases: builtins.list[str] = []
        prereleases: builtins.list[str] = []
        need_incompatible, last_compatible = query.prefer_incompatible, ""
        for v in versions:
            if not query.keep(v) or not allowed(v):
                continue
            if not need_incompatible:
                if not v.endswith("+incompatible"):
                    last_compatible = v
                elif last_compatible:
                    if gomod.has_go_mod(module_path, self._mod_at(base, module_path, last_compatible)):
                        break
                    need_incompatible = True
            (prereleases if module.semver_prerelease(v) else releases).append(v)
        return releases, prereleases

    def _untagged_latest_at(self, base: str, module_path: str, prefix: str, listing: str) -> VersionInfo | None:
        """The proxy's @latest, else the newest pseudo-version it lists (proxyRepo.Latest)."""
        try:
            return self._parse_info(self._get_bytes(base, f"{prefix}/@latest"), base, None)
        except _ProxyNotFound:
            pass
        newest = _newest_untagged(listing)
        return self._info_at(base, module_path, prefix, newest) if newest else None

    def _retractions_at(self, base: str, module_path: str, listing: str,
                        untagged: Callable[[], VersionInfo | None]) -> builtins.list[tuple[str, str]]:
        """What the go.mod of the latest version, retracted or not, retracts (modload.CheckRetractions).

        As in go, a latest version that cannot be found or a go.mod that does not parse
        retracts nothing; a failing proxy is still a failure.
        """
        try:
            latest = self._pick_at(base, module_path, listing, _LATEST, lambda v: True)
            if not latest and (info := untagged()) is not None:
                latest = info.version
            if not _is_exact(module_path, latest):
                return []
            return gomod.retractions(self._mod_at(base, module_path, latest))
        except _ProxyNotFound:
            return []

    def _mod_at(self, base: str, module_path: str, version: str) -> bytes:
        """One proxy's .mod of an exact version, remembered: it never changes."""
        key = (base, module_path, version)
        with self._mods_lock:
            if (data := self._mods.get(key)) is not None:
                return data
        data = self._get_bytes(base, self._file_path(module_path, version, ".mod"))
        with self._mods_lock:
            if len(self._mods) >= _MOD_CACHE_SIZE:
                self._mods.pop(next(iter(self._mods)))
            self._mods[key] = data
        return data

    def _stat_at(self, base: str, module_path: str, prefix: str, revision: str) -> VersionInfo:
        """A revision by name; v1.2.3+meta falls back to v1.2.3, which semver calls the same (queryProxy)."""
        try:
            return self._info_at(base, module_path, prefix, revision)
        except _ProxyNotFound:
            canonical = module.canonical_version(revision)
            if not canonical or canonical == revision:
                raise
            return self._info_at(base, module_path, prefix, canonical)

    def _info_at(self, base: str, module_path: str, prefix: str, version: str) -> VersionInfo:
        """One proxy's @v/<version>.info, checked like proxyRepo.Stat."""
        data = self._get_bytes(base, f"{prefix}/@v/{module.escape_version(version)}.info")
        want = version if _is_exact(module_path, version) else None
        return self._parse_info(data, base, want)

    @staticmethod
    def _parse_info(data: bytes, base: str, want: str | None) -> VersionInfo:
        """Decode {"Version", "Time"}; a proxy answering a different exact version is broken."""
        try:
            obj = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise _ProxyFailed(f"invalid .info response from {base}: {e}") from None
        version = obj.get("Version") if isinstance(obj, dict) else None
        when = obj.get("Time", "") if isinstance(obj, dict) else None
        if not isinstance(version, str) or not module.is_canonical_version(version) or not isinstance(when, str):
            raise _ProxyFailed(f"invalid .info response from {base}: {data[:100]!r}")
        if want is not None and version != want:
            raise _ProxyFailed(f"proxy {base} returned info for version {version} instead of requested version")
        return VersionInfo(version=version, time=when)

    def _file_path(self, module_path: str, version: str, suffix: str) -> str:
        """URL path of a .mod or .zip; these need the exact canonical version."""
        prefix = module.escape_path(module_path)
        if not module.is_canonical_version(version):
            raise module.InvalidVersion(f"version {module.go_quote(version)} invalid: not a canonical version")
        return f"{prefix}/@v/{module.escape_version(version)}{suffix}"

    # ------------------------------------------------------------------ proxy walking

    def _try(self, what: str, fetch: Callable[[str], T]) -> T:
        """Run fetch against each proxy in turn, following GOPROXY fall-through rules (modfetch.TryProxies)."""
        not_found: builtins.list[str] = []
        failure: _ProxyFailed | None = None
        for base, fall_through in self.proxies:
            if base == "off":
                if not_found or failure:
                    break
                raise ProxyUnavailable(f"{what}: module lookup disabled by GOPROXY=off")
            try:
                return fetch(base)
            except _ProxyNotFound as e:
                not_found.append(str(e).replace(base, _redacted(base)))
                continue
            except _ProxyFailed as e:
                # As go: a real failure is a more useful report than another proxy's 404.
                failure = _ProxyFailed(str(e).replace(base, _redacted(base)), e.refused)
                if not fall_through:
                    break
        if failure:
            raise (ProxyRefused if failure.refused else ProxyUnavailable)(f"{what}: {failure}")
        raise ModuleNotFound(f"{what}: not found ({'; '.join(not_found)})")

    # ------------------------------------------------------------------ HTTP

    def _url(self, base: str, path: str) -> str:
        """Full URL; escaped like go's pathEscape so that proxies see what go would send."""
        return base + "/" + urllib.parse.quote(path, safe="/$&+:=@")

    def _get(self, base: str, path: str) -> requests.Response:
        """GET with timeouts, streamed; 404/410 and other failures mapped to the per-proxy errors."""
        url = self._url(base, path)
        # The status line and headers must come within a second past the read timeout, however
        # slowly they drip (a plain stall still ends in the read timeout, reported as such).
        head = _head_deadline.state = {"seconds": self.timeout + 1.0, "passed": False}
        try:
            resp = self.session.get(
                url,
                headers={"User-Agent": self.user_agent},
                timeout=(self.timeout, self.timeout),
                stream=True,
            )
        except requests.RequestException as e:
            if head["passed"]:
                raise _ProxyFailed(f"response head from {base} took longer than {head['seconds']:g}s") from None
            raise _ProxyFailed(f"{type(e).__name__} from {base}: {_short(e)}") from None
        finally:
            _head_deadline.state = None
        if resp.status_code == 200:
            return resp
        with resp:
            desc = _describe(resp, base)
        if resp.status_code in (404, 410):
            raise _ProxyNotFound(desc)
        raise _ProxyFailed(desc, refused=400 <= resp.status_code < 500 and resp.status_code not in _RETRYABLE_4XX)

    def _get_bytes(self, base: str, path: str, limit: int = MAX_SMALL_BYTES) -> bytes:
        """A whole (small) response body, refused if longer than limit."""
        with self._get(base, path) as resp:
            return b"".join(self._iter_body(resp, base, limit, f"response for {path}", self.timeout))

    def _get_text(self, base: str, path: str) -> str:
        """A small response body as text."""
        return self._get_bytes(base, path).decode("utf-8", "replace")

    def _iter_body(self, resp: requests.Response, base: str, limit: int, what: str,
                   seconds: float | None = None) -> Iterator[bytes]:
        """Body chunks; read errors, the overall deadline and more than limit bytes become _ProxyFailed.

        The deadline holds against a proxy that drips a byte at a time (each read within the read
        timeout): a watchdog shuts the socket down when it passes, which ends the blocked read.
        """
        seconds = self.download_timeout if seconds is None else seconds
        deadline_passed = threading.Event()

        def abort() -> None:
            deadline_passed.set()
            _shutdown(resp)

        watchdog = threading.Timer(seconds, abort)
        watchdog.daemon = True
        watchdog.start()
        size = 0
        try:
            for chunk in resp.iter_content(_CHUNK):
                if deadline_passed.is_set():
                    break
                size += len(chunk)
                if size > limit:
                    raise _ProxyFailed(f"{what} from {base} larger than {limit} bytes")
                yield chunk
        except (requests.RequestException, OSError, ValueError) as e:
            if not deadline_passed.is_set():
                raise _ProxyFailed(f"reading response from {base}: {_short(e)}") from None
        finally:
            watchdog.cancel()
        if deadline_passed.is_set():
            raise _ProxyFailed(f"response from {base} took longer than {seconds:g}s")

    def _download(self, base: str, path: str, dest: pathlib.Path) -> None:
        """Stream one proxy's zip into dest atomically, never holding it in memory."""
        with self._get(base, path) as resp:
            declared = resp.headers.get("Content-Length", "")
            if declared.isascii() and declared.isdigit() and int(declared) > MAX_ZIP_BYTES:
                raise _ProxyFailed(f"zip from {base} too large ({declared} bytes)")
            fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
            tmp = pathlib.Path(tmp_name)
            try:
                with os.fdopen(fd, "wb") as f:
                    for chunk in self._iter_body(resp, base, MAX_ZIP_BYTES, "zip"):
                        f.write(chunk)
                    f.flush()
                    os.fsync(f.fileno())
                if not zipfile.is_zipfile(tmp):
                    raise _ProxyFailed(f"malformed zip from {base}")
                os.replace(tmp, dest)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
        fsync_dir(dest.parent)



# ---------------------------------------------------------------------------- helpers


def _tagged_versions(text: str) -> list[str]:
    """Versions from a @v/list body: first field per line, valid semver, not pseudo; sorted."""
    found = (line.split()[0] for line in text.split("\n") if line.split())
    return module.sort_versions(v for v in found if not module.is_pseudo_version(v))


def _newest_untagged(text: str) -> str:
    """The newest pseudo-version (or timestamped entry) in a list body, as proxyRepo.latestFromList."""
    best_time, best = "", ""
    for line in text.split("\n"):
        fields = line.split()
        if not fields or not module.is_valid_semver(fields[0]):
            continue
        if len(fields) >= 2:
            stamp = "".join(c for c in fields[1][:19] if c.isdigit())  # RFC 3339 -> yyyymmddhhmmss
        elif module.is_pseudo_version(fields[0]):
            stamp = _pseudo_time(fields[0])
        else:
            continue
        if stamp > best_time:
            best_time, best = stamp, fields[0]
    return best


def _pseudo_time(v: str) -> str:
    """The yyyymmddhhmmss timestamp of a pseudo-version, as a sortable string."""
    return module.semver_canonical(v).rsplit("-", 2)[-2][-14:]


def _is_exact(module_path: str, version: str) -> bool:
    """Whether version is canonical and fits the module path, so a proxy must answer exactly it."""
    try:
        module.check(module_path, version)
    except ValueError:
        return False
    return module.is_canonical_version(version)


_PASSWORD = re.compile(r"(://[^/@,|\s]*?:)[^/@,|\s]*@")


def redacted(text: str) -> str:
    """text (a GOPROXY list, a URL, a log line) with every URL's password replaced by xxxxx, like Go's URL.Redacted."""
    return _PASSWORD.sub(r"\1xxxxx@", text)


def _redacted(base: str) -> str:
    """base with any password hidden, for error messages (like Go's URL.Redacted)."""
    parts = urllib.parse.urlsplit(base)
    if parts.password is None:
        return base
    netloc = parts.netloc.replace(":" + parts.password + "@", ":xxxxx@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


# A response head (status line, headers) must arrive within the seconds set here by the calling
# thread: the read timeout alone bounds each read, not a head that drips a byte at a time.
_head_deadline = threading.local()


def _guarded_connection(base: type) -> type:
    """base (a urllib3 connection class) whose getresponse() shuts its socket down past the head deadline."""

    class Guarded(base):  # type: ignore[misc]
        def getresponse(self, *args: Any, **kwargs: Any) -> Any:
            state = getattr(_head_deadline, "state", None)  # set by this thread's GoProxyClient._get
            if state is None or getattr(self, "sock", None) is None:
                return super().getresponse(*args, **kwargs)
            sock = self.sock

            def abort() -> None:
                state["passed"] = True
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

            timer = threading.Timer(state["seconds"], abort)
            timer.daemon = True
            timer.start()
            try:
                return super().getresponse(*args, **kwargs)
            finally:
                timer.cancel()

    Guarded.__name__ = "Guarded" + base.__name__
    return Guarded


def _deadline_session() -> requests.Session:
    """A requests session whose connections enforce _head_deadline."""
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class Pool(HTTPConnectionPool):
        ConnectionCls = _guarded_connection(HTTPConnectionPool.ConnectionCls)

    class TLSPool(HTTPSConnectionPool):
        ConnectionCls = _guarded_connection(HTTPSConnectionPool.ConnectionCls)

    class Adapter(requests.adapters.HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": Pool, "https": TLSPool}

    session = requests.Session()
    session.mount("http://", Adapter())
    session.mount("https://", Adapter())
    return session


def _shutdown(resp: requests.Response) -> None:
    """Shut down the socket under a response, so that a read blocked on it returns now."""
    conn = getattr(resp.raw, "_connection", None) or getattr(resp.raw, "connection", None)
    sock = getattr(conn, "sock", None)
    if sock is None:  # e.g. urllib3 already released it: closing the response is enough
        resp.close()
        return
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _short(e: BaseException) -> str:
    """A one-line, bounded description of an exception."""
    return str(e).replace("\n", " ")[:300]


