"""Parse request paths into what they name: a module, module@version, or a build/result page."""

from __future__ import annotations

import posixpath
from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum

from ..errors import GobuildError
from ..module import InvalidPath, check_import_path, check_path
from ..spec import MAX_SPEC_LEN, BuildSpec, SpecError, is_sum


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
    if "\ufffd" in path or any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
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
    """The module path and the package's import path must follow Go's rules (nothing else reaches go or a page)."""
    _module(spec.module)
    try:
        check_import_path(spec.package)
    except InvalidPath as e:
        raise BadPath(f"bad package path: {e}") from e


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
