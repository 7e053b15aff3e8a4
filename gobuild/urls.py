"""Every URL of the site, parsed and built side by side: a module, module@version, a build or result page
and its files, install scripts, feeds, badges and the transparency log.

Build and result URLs rest on BuildSpec.link() and result_link() (the spec's own text); a test
checks that parse(build_url(...)) and parse(result_url(...)) give back what was built. Pure (no
Flask): `gobuild get` and the verifiers build another instance's URLs with it too.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum

from .errors import GobuildError, HTTPProblem
from .module import InvalidPath, check_path
from .spec import MAX_SPEC_LEN, BuildSpec, SpecError, check_paths, is_sum

_BAD_CHARS = re.compile("[\x00-\x1f\x7f\ufffd]")  # control characters, undecodable bytes (one C scan)


class Page(StrEnum):
    """The kind of page a build or result URL names: its last element (the binary's file name is a kind)."""

    MAIN = ""  # the build or result page itself
    LOG = "log"
    DL = "dl"
    RECORD = "record"
    EVENTS = "events"
    RETRY = "retry"
    START = "start"
    LIVE = "live"
    PROOF = "proof"
    BUILDINFO = "buildinfo"
    SBOM = "sbom.cdx.json"
    FILE = "file"
    FILE_GZ = "file.gz"
    LEGACY_FILE = "legacy-file"  # an original gobuild's name for /vN commands
    LEGACY_FILE_GZ = "legacy-file.gz"


FEED = "builds.atom"
BADGE = "badge.svg"
SCRIPT = "install.sh"
TLOG = "/tlog"  # the transparency log's endpoints: latest, lookup/<spec>, tile/...

# The pages named by a fixed last element; the file kinds are named by the spec's file name.
PAGES = tuple(p for p in Page if p not in (Page.FILE, Page.FILE_GZ, Page.LEGACY_FILE, Page.LEGACY_FILE_GZ))


class BadPath(GobuildError):
    """A path that names nothing we serve; the message is the one-line hint for the user."""

    status = 404
    code = "bad-path"


@dataclass(frozen=True)
class ModuleURL:
    """/<module>: the main packages of a module."""

    module: str


@dataclass(frozen=True)
class ShortURL:
    """/<module>@<version>: a shortcut to the module's build page."""

    module: str
    version: str


@dataclass(frozen=True)
class SpecURL:
    """A build URL (sum is None) or result URL, and the page under it."""

    spec: BuildSpec
    sum: str | None
    page: Page


def clean_path(path: str) -> str:
    """path with //, /./ and /../ resolved, keeping a trailing slash."""
    cleaned = "/" + posixpath.normpath(path).lstrip("/")
    if path.endswith("/") and cleaned != "/":
        cleaned += "/"
    return cleaned


def check_text(path: str) -> None:
    """Refuse control characters, undecodable bytes and absurd lengths before parsing."""
    if len(path) > MAX_SPEC_LEN + 200:
        raise BadPath("URL path too long")
    if _BAD_CHARS.search(path):
        raise BadPath("URL path holds invalid UTF-8 or control characters")


def parse(path: str, targets: Collection[tuple[str, str]]) -> ModuleURL | ShortURL | SpecURL:
    """Classify a request path (without the leading slash)."""
    check_text(path)
    first = path.split("/", 1)[0]
    if "." not in first.split("@", 1)[0]:
        raise BadPath("not a module path: the first path element must contain a dot")
    if "@" not in path:
        return ModuleURL(_module(path.rstrip("/")))
    mod, _, rest = path.partition("@")
    if "/" not in rest:
        if not rest:
            raise BadPath("empty version after @")
        return ShortURL(_module(mod), rest)
    return _parse_spec_url(path, targets)


def _module(path: str) -> str:
    try:
        check_path(path)
    except InvalidPath as e:
        raise BadPath(f"bad module path: {e}") from e
    return path


def _parse_spec_url(path: str, targets: Collection[tuple[str, str]]) -> SpecURL:
    base, _, page = path.rpartition("/")
    head, _, maybe_sum = base.rpartition("/")
    sum_ = None
    if head and "/" in head and is_sum(maybe_sum):
        sum_, base = maybe_sum, head
    try:
        spec = BuildSpec.parse(base + "/", targets)
    except SpecError as e:
        if "/" not in base.partition("@")[2]:
            raise BadPath("Missing goos-goarch-goversion at end of path") from e
        raise BadPath(f"Bad module@version/path: {e}, or missing slash at end of URL") from e
    check_spec_paths(spec)
    return SpecURL(spec, sum_, _page_kind(spec, page))


def check_spec_paths(spec: BuildSpec) -> None:
    """spec.check_paths, failing as a URL that names nothing we serve."""
    try:
        check_paths(spec)
    except SpecError as e:
        raise BadPath(str(e)) from e


def _page_kind(spec: BuildSpec, page: str) -> Page:
    if page in PAGES:
        return Page(page)
    for legacy in (False, True):
        name = spec.download_filename(legacy)
        prefix = "legacy-" if legacy else ""
        if page == name:
            return Page(prefix + "file")
        if page == name + ".gz":
            return Page(prefix + "file.gz")
    raise BadPath("Missing slash at end of URL or unknown build/result page")


def page_name(spec: BuildSpec, page: Page) -> str:
    """The last URL element of a page kind (the file kinds are named by the spec's download file name)."""
    if page in PAGES:
        return page.value
    legacy = page in (Page.LEGACY_FILE, Page.LEGACY_FILE_GZ)
    name = spec.download_filename(legacy)
    return name + ".gz" if page in (Page.FILE_GZ, Page.LEGACY_FILE_GZ) else name


def module_url(module: str) -> str:
    """/<module>: its commands."""
    return "/" + module


def short_url(module: str, version: str) -> str:
    """/<module>@<version>: the shortcut to its command's build page."""
    return f"/{module}@{version}"


def build_prefix(module: str, version: str, pkgdir: str) -> str:
    """A build URL up to its target element (the install script appends goos-goarch-goversion/)."""
    return f"{short_url(module, version)}/{_dir_part(pkgdir)}"


def build_url(spec: BuildSpec, page: Page = Page.MAIN) -> str:
    """A build URL (no sum): the build page, or one of its pages and files."""
    return spec.link() + page_name(spec, page)


def result_url(spec: BuildSpec, sum_: str, page: Page = Page.MAIN) -> str:
    """A result URL: a finished build's page, or one of its files (the binary, log, record, proof, ...)."""
    return spec.result_link(sum_) + page_name(spec, page)


def latest_url(spec: BuildSpec) -> str:
    """The build URL that always means the newest module version and Go."""
    return build_url(spec.with_(version="latest", goversion="latest"))


def _dir_part(pkgdir: str) -> str:
    return "" if pkgdir == "/" else pkgdir[1:] + "/"


def install_url(module: str, version: str, pkgdir: str) -> str:
    """/<module>@<version>/[<dir>/]install.sh: the install one-liner's script."""
    return build_prefix(module, version, pkgdir) + SCRIPT


def parse_install(prefix: str) -> tuple[str, str, str]:
    """(module, version, dir) of an install script URL's prefix, <module>@<version>[/<dir>]; "" is latest."""
    module, at, rest = prefix.partition("@")
    if not at:
        raise HTTPProblem(404, f"expected /<module>@<version>/[<dir>/]{SCRIPT}, e.g. /{prefix}@latest/{SCRIPT}")
    version, _, dirpart = rest.partition("/")
    check_feed_module(module)
    return module, version or "latest", "/" + dirpart if dirpart else "/"


def feed_url(module: str | None = None) -> str:
    """The Atom feed of this instance's builds, or of one module's."""
    return f"/{FEED}" if module is None else f"/{module}/{FEED}"


def check_feed_module(module: str) -> None:
    """A feed's, badge's or install script's module path must follow Go's rules."""
    try:
        check_path(module)
    except InvalidPath as e:
        raise HTTPProblem(404, f"bad module path: {e}") from None


def badge_url(module: str, pkgdir: str) -> str:
    """/<module>@latest/[<dir>/]badge.svg: the newest version of a command built here."""
    return build_prefix(module, "latest", pkgdir) + BADGE


def parse_badge(prefix: str) -> tuple[str, str]:
    """(module, dir) of a badge URL's prefix, <module>@latest[/<dir>]."""
    module, at, rest = prefix.partition("@")
    version, _, dirpart = rest.partition("/")
    if not at or version != "latest":
        raise HTTPProblem(404, f"expected /<module>@latest/[<dir>/]{BADGE}")
    check_feed_module(module)
    return module, "/" + dirpart if dirpart else "/"


def tlog_url(host_url: str = "") -> str:
    """The transparency log's base URL (what `gobuild get -url` takes); relative without host_url."""
    return host_url.rstrip("/") + TLOG


# Another instance's URLs, from its log's URL: what `gobuild get` and our verifiers fetch.

def default_tlog_url(name: str) -> str:
    """The log URL the original derives from a key name."""
    return f"https://{name}{TLOG}" if "." in name else f"http://{name}:8000{TLOG}"


def site_of(log_url: str) -> str:
    """An instance's base URL, where its result URLs live: its log URL without the /tlog suffix."""
    return log_url.rstrip("/").removesuffix(TLOG)


def download_url(log_url: str, spec: BuildSpec, sum_: str, legacy: bool = False) -> str:
    """The URL of an instance's gzipped binary of spec with sum_ (legacy: the original's name for /vN roots)."""
    return site_of(log_url) + result_url(spec, sum_, Page.LEGACY_FILE_GZ if legacy else Page.FILE_GZ)
