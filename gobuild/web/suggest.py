"""What an error page suggests trying next: the module that holds a package path, the nearest
version that exists, the build page (with its log) of a failed build, the newest Go.

Each suggestion comes from the request's own path and what the module proxy says; a lookup that
fails only means one suggestion less.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import request

from .. import module, urls
from ..failures import BuildError, PermanentFailure
from ..goproxy import GoProxyError
from ..goproxy import ModuleNotFound as ProxyNotFound
from ..toolchains import UnknownGoVersion
from .current import services

MAX_PREFIXES = 3  # proxy lookups for the module of a package path, longest prefix first


@dataclass(frozen=True)
class Suggestion:
    """One thing to try: what it is, and where."""

    text: str
    href: str


def suggestions(e: Exception) -> list[Suggestion]:
    """What to try after e, for the path of the current request."""
    try:
        target = urls.parse(request.path[1:], services().targets)
    except (urls.BadPath, ValueError):
        return []
    if isinstance(target, urls.ModuleURL):
        return []
    if isinstance(target, urls.ShortURL):
        return _for_module(e, target.module, target.version, lambda v: urls.short_url(target.module, v))
    spec = target.spec
    if isinstance(e, PermanentFailure) and target.sum is None:
        why = "The build page shows why it failed, with the whole log, and can retry it:"
        return [Suggestion(why, urls.build_url(spec))]
    if isinstance(e, UnknownGoVersion):
        newest = spec.with_(goversion="latest")
        return [Suggestion("The same build with the newest Go this server has:", urls.build_url(newest))]
    return _for_module(e, spec.module, spec.version, lambda v: urls.build_url(spec.with_(version=v)))


def _for_module(e: Exception, path: str, version: str, link: Callable[[str], str]) -> list[Suggestion]:
    """For a module or version the proxy does not know: the module root, else the nearest version."""
    if not isinstance(e, ProxyNotFound) and not (isinstance(e, BuildError) and e.status == 404):
        return []
    try:
        versions = services().versions.get(path)  # newest first
    except GoProxyError:
        return _module_root(path)
    if not versions:
        return []
    nearest = nearest_versions(versions, version)
    return [Suggestion(f"Version {v} exists:", link(v)) for v in nearest]


def nearest_versions(versions: list[str], version: str) -> list[str]:
    """The versions just below and just above version (one of them if it is past either end)."""
    if not module.is_valid_semver(version):
        return versions[:1]
    below = [v for v in versions if module.compare_semver(v, version) < 0]
    above = [v for v in versions if module.compare_semver(v, version) > 0]
    return [v for v in (below[:1] + above[-1:]) if v]


def _module_root(path: str) -> list[Suggestion]:
    """The module holding a package path: the longest prefix the proxy knows."""
    parts = path.split("/")
    for n in range(len(parts) - 1, max(0, len(parts) - 1 - MAX_PREFIXES), -1):
        prefix = "/".join(parts[:n])
        if not module.is_valid_path(prefix):
            continue
        try:
            services().versions.get(prefix)
        except GoProxyError:
            continue
        return [Suggestion(f"{path} is a package path; its module is {prefix}. Its commands:", urls.module_url(prefix))]
    return []
