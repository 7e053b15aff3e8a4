"""What the build and result pages show around one build: links to related builds, "newer" banners, notes."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import module, urls
from ..compiler import MIN_GO_MINOR
from ..goproxy import GoProxyError
from ..spec import BuildSpec, GoVersion, SpecError
from ..store import NEGATIVE_TTL
from .current import services

log = logging.getLogger(__name__)

VERSIONS_TTL = 60.0  # seconds a module's version list is reused
MAX_VERSION_LINKS = 40


class VersionsCache:
    """A module's versions from the proxy, newest first, kept briefly: result pages list them on every view."""

    def __init__(self, fetch: Callable[[str], list[str]], ttl: float = VERSIONS_TTL, size: int = 256,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._ttl = ttl
        self._size = size
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, list[str] | GoProxyError]] = OrderedDict()
        self._lock = threading.Lock()

    def stamp(self, module_path: str) -> float | None:
        """When module_path's list was fetched, while get() would reuse it; else None."""
        with self._lock:
            hit = self._entries.get(module_path)
        return hit[0] if hit is not None and self._clock() - hit[0] <= self._ttl else None

    def get(self, module_path: str) -> list[str]:
        """The tagged versions, newest first; raises the proxy's error (also kept for ttl)."""
        now = self._clock()
        with self._lock:
            hit = self._entries.get(module_path)
        if hit is None or now - hit[0] > self._ttl:
            try:
                value: list[str] | GoProxyError = list(reversed(self._fetch(module_path)))
            except GoProxyError as e:
                value = e
            hit = (now, value)
            with self._lock:
                self._entries[module_path] = hit
                self._entries.move_to_end(module_path)
                while len(self._entries) > self._size:
                    self._entries.popitem(last=False)
        if isinstance(hit[1], GoProxyError):
            raise hit[1]
        return hit[1]


@dataclass(frozen=True)
class Link:
    """One entry of a link column: a related spec's result URL if it is built, else its build URL."""

    text: str
    href: str
    built: bool
    active: bool
    note: str = ""
    group: str = ""  # the heading it is listed under (targets: their OS)


@dataclass(frozen=True)
class Column:
    """A titled list of links to the same command built differently."""

    title: str
    links: list[Link]
    error: str = ""
    filter: str = ""  # the id of its list, for a filter box; "" for none


def _link(spec: BuildSpec, other: BuildSpec, text: str, note: str = "", group: str = "",
          hint_age: float = NEGATIVE_TTL) -> Link:
    result = services().store.result_hint(other, hint_age)
    href = urls.result_url(other, result.sum) if result is not None else urls.build_url(other)
    return Link(text, href, result is not None, other == spec, note, group)


def _goversions() -> list[str]:
    """Go versions to link to: every one this server can build with (installed, or served by the
    module proxy and installed on first use), the newest of each minor release first, then the rest."""
    toolchains = services().toolchains
    try:
        available = toolchains.available()
    except Exception:  # the proxy's list is unknown: what is installed
        available = toolchains.installed()
    allowed = [v for v in available if _buildable(v) and toolchains.policy.allows(v)]
    newest = newest_of_each_minor(allowed)
    return newest + [v for v in allowed if v not in newest]


def newest_of_each_minor(goversions: list[str]) -> list[str]:
    """The newest release of each minor version among goversions (newest first), newest minor first."""
    found: dict[int, str] = {}
    for v in goversions:
        parsed = GoVersion.parse(v)
        if parsed.is_release() and parsed.minor not in found:
            found[parsed.minor] = v
    return [found[m] for m in sorted(found, reverse=True)]


def _buildable(goversion: str) -> bool:
    """Whether goversion can build a command at a module version (go1.16 and newer)."""
    try:
        return GoVersion.parse(goversion).minor >= MIN_GO_MINOR
    except SpecError:
        return False


def _targets(spec: BuildSpec, hint_age: float) -> list[Link]:
    """Links to every target, grouped by OS: the OS of the most built target first, and so on."""
    broken = services().toolchains.broken_targets(spec.goversion)
    ordered = services().targets.by_popularity()
    systems = list(dict.fromkeys(goos for goos, _ in ordered))
    grouped = sorted(ordered, key=lambda t: systems.index(t[0]))  # stable: popularity within an OS
    return [_link(spec, spec.with_(goos=goos, goarch=goarch), f"{goos}/{goarch}",
                  "broken" if (goos, goarch) in broken else "", goos, hint_age) for goos, goarch in grouped]


def related(spec: BuildSpec, hint_age: float = NEGATIVE_TTL) -> list[Column]:
    """The four columns: module versions, targets, Go versions, variants (current one active).

    hint_age: how old a remembered "not built" may be for a link's check mark (0: look now)."""
    error = ""
    try:
        versions = services().versions.get(spec.module)[:MAX_VERSION_LINKS]
    except GoProxyError as e:
        versions, error = [], f"listing versions: {e}"
    if spec.version not in versions:
        versions = module.sort_versions([*versions, spec.version])[::-1]
    goversions = _goversions()
    if spec.goversion not in goversions:
        goversions = [spec.goversion, *goversions]
    installed = set(services().toolchains.installed())
    return [
        Column("Module versions", [_link(spec, spec.with_(version=v), v, hint_age=hint_age) for v in versions],
               error),
        Column("Targets", _targets(spec, hint_age), filter="col-targets"),
        Column("Go versions", [_link(spec, spec.with_(goversion=v), v, "" if v in installed else "installs on use",
                                     hint_age=hint_age) for v in goversions], filter="col-goversions"),
        Column("Variants", [_link(spec, spec.with_(stripped=False), "default", hint_age=hint_age),
                            _link(spec, spec.with_(stripped=True), "stripped", hint_age=hint_age)]),
    ]


@dataclass(frozen=True)
class Newer:
    """A banner: a newer module version and/or Go toolchain exists, linking to that build."""

    text: str
    href: str


def newer(spec: BuildSpec, hint_age: float = NEGATIVE_TTL) -> Newer | None:
    """The "newer version available" banner for spec, if there is one (hint_age: as for related)."""
    latest_module = ""
    try:
        listed = services().versions.get(spec.module)
        releases = [v for v in listed if not module.semver_prerelease(v)]
        latest_module = (releases or listed or [""])[0]
    except GoProxyError:
        pass
    try:
        latest_go = services().toolchains.latest()
    except Exception:
        latest_go = spec.goversion
    module_newer = bool(latest_module) and module.is_valid_semver(spec.version) and \
        module.compare_semver(latest_module, spec.version) > 0
    go_newer = latest_go != spec.goversion and _go_key(latest_go) > _go_key(spec.goversion)
    if not module_newer and not go_newer:
        return None
    target = spec.with_(version=latest_module if module_newer else spec.version,
                        goversion=latest_go if go_newer else spec.goversion)
    if module_newer and go_newer:
        text = f"A newer version of both this module ({latest_module}) and the Go toolchain ({latest_go}) is available"
    elif module_newer:
        text = f"A newer version of this module is available: {latest_module}"
    else:
        text = f"A newer Go toolchain version is available: {latest_go}"
    return Newer(text, _link(spec, target, "", hint_age=hint_age).href)


def _go_key(goversion: str) -> tuple[int, ...]:
    from ..spec import GoVersion, SpecError

    try:
        return (GoVersion.parse(goversion).key,)
    except SpecError:
        return (-1,)


def instance_notes() -> str:
    """The text of the instance notes file from config ("" if none or unreadable)."""
    name = services().config.instance_notes_file
    if not name:
        return ""
    try:
        return Path(name).read_text(errors="replace")
    except OSError as e:
        log.warning("instance notes file: %s", e)
        return ""


def pkgsite_link(spec: BuildSpec) -> str:
    """The command's documentation on pkg.go.dev."""
    return f"https://pkg.go.dev/{spec.module}@{spec.version}{'' if spec.dir == '/' else spec.dir}?tab=doc"


