"""Module paths and versions: validity, `!`-case escaping and semver order, as the go command has them.

A port of the parts of `golang.org/x/mod/module` and `golang.org/x/mod/semver` that gobuild
needs, checked against the copy vendored in Go 1.26 (`src/cmd/vendor/golang.org/x/mod`).
Pure: no I/O. Error messages follow Go's wording so users see what `go` would say.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import GobuildError

# One escaped path element, or escaped version, becomes one directory name in the module
# cache and in our data dir; Linux file systems cap names at 255 bytes. x/mod has no such
# limit, but a longer element could never be downloaded, so we refuse it up front.
MAX_ELEMENT_BYTES = 255

_BAD_WINDOWS_NAMES = frozenset(
    ["CON", "PRN", "AUX", "NUL"]
    + [f"COM{i}" for i in range(1, 10)]
    + [f"LPT{i}" for i in range(1, 10)]
)

_PSEUDO_RE = re.compile(
    r"^v[0-9]+\.(0\.0-|\d+\.\d+-([^+]*\.)?0\.)\d{14}-[A-Za-z0-9]+(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$",
    re.ASCII,
)


class InvalidPath(GobuildError, ValueError):
    """A module or import path that the go command would reject."""

    status = 400
    code = "bad-module-path"


class InvalidVersion(GobuildError, ValueError):
    """A version string that cannot name a module version (or an escaped form that is malformed)."""

    status = 400
    code = "bad-version"


# ---------------------------------------------------------------------------- Go-style quoting


def go_quote(s: str) -> str:
    """Quote s like Go's %q / strconv.Quote, for error messages."""
    return '"' + "".join(_quote_char(c, '"') for c in s) + '"'


def _go_quote_rune(c: str) -> str:
    """Quote one character like Go's %q on a rune."""
    return "'" + _quote_char(c, "'") + "'"


_SIMPLE_ESCAPES = {"\a": r"\a", "\b": r"\b", "\f": r"\f", "\n": r"\n", "\r": r"\r", "\t": r"\t", "\v": r"\v"}


def _quote_char(c: str, quote: str) -> str:
    """One character of a Go quoted literal."""
    if c == quote or c == "\\":
        return "\\" + c
    if c in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[c]
    if c.isprintable() and not _is_surrogate(c):
        return c
    n = ord(c)
    if n < 0x80:
        return f"\\x{n:02x}"
    if _is_surrogate(c):
        # A lone surrogate stands for an undecodable byte (surrogateescape); Go shows the byte.
        return f"\\x{n & 0xFF:02x}"
    return f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


def _is_surrogate(c: str) -> bool:
    """Whether c is a lone surrogate, i.e. not valid UTF-8 text."""
    return 0xD800 <= ord(c) <= 0xDFFF


# ---------------------------------------------------------------------------- path checks

_MODULE, _IMPORT, _FILE = "module", "import", "file"


def _mod_path_ok(c: str) -> bool:
    """Whether c may appear in a module path element (ASCII letters, digits, - . _ ~)."""
    return c.isascii() and (c.isalnum() or c in "-._~")


def _import_path_ok(c: str) -> bool:
    """Whether c may appear in an import path element ('+' is allowed there, e.g. 'g++')."""
    return _mod_path_ok(c) or c == "+"


def _file_name_ok(c: str) -> bool:
    """Whether c may appear in a file name (and so in a version string)."""
    if c.isascii():
        return c.isalnum() or c in "!#$%&()+,-.=@[]^_{}~ "
    return c.isalpha()


_CHAR_OK = {_MODULE: _mod_path_ok, _IMPORT: _import_path_ok, _FILE: _file_name_ok}


def _check_path(path: str, kind: str) -> None:
    """Checks common to module, import and file paths; raises ValueError without the path."""
    if any(_is_surrogate(c) for c in path):
        raise ValueError("invalid UTF-8")
    if path == "":
        raise ValueError("empty string")
    if path[0] == "-" and kind != _FILE:
        raise ValueError("leading dash")
    if "//" in path:
        raise ValueError("double slash")
    if path[-1] == "/":
        raise ValueError("trailing slash")
    for elem in path.split("/"):
        _check_elem(elem, kind)


def _check_elem(elem: str, kind: str) -> None:
    """Check one path element (or a version string, with kind _FILE)."""
    if elem == "":
        raise ValueError("empty path element")
    if elem.count(".") == len(elem):
        raise ValueError(f"invalid path element {go_quote(elem)}")
    if elem[0] == "." and kind == _MODULE:
        raise ValueError("leading dot in path element")
    if elem[-1] == ".":
        raise ValueError("trailing dot in path element")
    char_ok = _CHAR_OK[kind]
    for c in elem:
        if not char_ok(c):
            raise ValueError(f"invalid char {_go_quote_rune(c)}")
    short = elem.split(".", 1)[0]
    if short.upper() in _BAD_WINDOWS_NAMES:
        raise ValueError(f"{go_quote(short)} disallowed as path element component on Windows")
    if kind != _FILE and _looks_like_short_name(short):
        raise ValueError("trailing tilde and digits in path element")
    if len(_escape_string(elem).encode()) > MAX_ELEMENT_BYTES:
        raise ValueError(f"path element too long (more than {MAX_ELEMENT_BYTES} bytes)")


def _looks_like_short_name(short: str) -> bool:
    """Whether short ends in '~' and digits, like a Windows 8.3 short name (GOPKG~1)."""
    tilde = short.rfind("~")
    suffix = short[tilde + 1 :]
    return tilde >= 0 and suffix != "" and suffix.isascii() and suffix.isdigit()


def _first_path_ok(c: str) -> bool:
    """Whether c may appear in the first (domain name) element: lower-case LDH plus dots."""
    return c in "-." or ("0" <= c <= "9") or ("a" <= c <= "z")


def check_path(path: str) -> None:
    """Raise InvalidPath unless path is a valid module path (module.CheckPath)."""
    try:
        _check_path(path, _MODULE)
        _check_module_specific(path)
    except ValueError as e:
        raise InvalidPath(f"malformed module path {go_quote(path)}: {e}") from None


def _check_module_specific(path: str) -> None:
    """The rules module paths add on top of import paths."""
    first = path.split("/", 1)[0]
    if first == "":
        raise ValueError("leading slash")
    if "." not in first:
        raise ValueError("missing dot in first path element")
    if path[0] == "-":
        raise ValueError("leading dash in first path element")
    for c in first:
        if not _first_path_ok(c):
            raise ValueError(f"invalid char {_go_quote_rune(c)} in first path element")
    if split_path_version(path) is None:
        raise ValueError("invalid version")


def check_file_path(path: str) -> None:
    """Raise ValueError unless path is a valid file path inside a module zip (module.CheckFilePath)."""
    _check_path(path, _FILE)


def check_import_path(path: str) -> None:
    """Raise InvalidPath unless path is a valid package import path (module.CheckImportPath)."""
    try:
        _check_path(path, _IMPORT)
    except ValueError as e:
        raise InvalidPath(f"malformed import path {go_quote(path)}: {e}") from None


def is_valid_path(path: str) -> bool:
    """Whether path is a valid module path."""
    try:
        check_path(path)
    except InvalidPath:
        return False
    return True


def split_path_version(path: str) -> tuple[str, str] | None:
    """Split path into (prefix, major suffix like "/v2" or ".v1" or ""), None if the suffix is malformed."""
    if path.startswith("gopkg.in/"):
        return _split_gopkg_in(path)
    i = len(path)
    dot = False
    while i > 0 and ((path[i - 1].isascii() and path[i - 1].isdigit()) or path[i - 1] == "."):
        dot = dot or path[i - 1] == "."
        i -= 1
    if i <= 1 or i == len(path) or path[i - 1] != "v" or path[i - 2] != "/":
        return path, ""
    prefix, major = path[: i - 2], path[i - 2 :]
    if dot or len(major) <= 2 or major[2] == "0" or major == "/v1":
        return None
    return prefix, major


def _split_gopkg_in(path: str) -> tuple[str, str] | None:
    """split_path_version for gopkg.in paths, which end in .vN (N may be 0 or 1)."""
    i = len(path)
    if path.endswith("-unstable"):
        i -= len("-unstable")
    while i > 0 and path[i - 1].isascii() and path[i - 1].isdigit():
        i -= 1
    if i <= 1 or path[i - 1] != "v" or path[i - 2] != ".":
        return None
    prefix, major = path[: i - 2], path[i - 2 :]
    if len(major) <= 2 or (major[2] == "0" and major != ".v0"):
        return None
    return prefix, major


# ---------------------------------------------------------------------------- escaping


def _escape_string(s: str) -> str:
    """Replace each upper-case ASCII letter by '!' and its lower-case form."""
    return "".join("!" + c.lower() if "A" <= c <= "Z" else c for c in s)


def _unescape_string(escaped: str) -> str | None:
    """Undo _escape_string; None if escaped is not a valid escaped form."""
    out: list[str] = []
    bang = False
    for c in escaped:
        if not c.isascii():
            return None
        if bang:
            if not "a" <= c <= "z":
                return None
            out.append(c.upper())
            bang = False
        elif c == "!":
            bang = True
        elif "A" <= c <= "Z":
            return None
        else:
            out.append(c)
    return None if bang else "".join(out)


def escape_path(path: str) -> str:
    """The `!`-escaped form of a module path, for proxy URLs and cache dirs; InvalidPath if invalid."""
    check_path(path)
    return _escape_string(path)


def escape_version(version: str) -> str:
    """The `!`-escaped form of a version (or query such as a branch name); InvalidVersion if disallowed."""
    try:
        _check_elem(version, _FILE)
    except ValueError:
        raise InvalidVersion(f"version {go_quote(version)} invalid: disallowed version string") from None
    if "!" in version or not version.isascii():
        # '!' would make the escaping ambiguous; x/mod refuses non-ASCII here too.
        raise InvalidVersion(f"version {go_quote(version)} invalid: disallowed version string")
    return _escape_string(version)


def unescape_path(escaped: str) -> str:
    """The module path for an escaped path; InvalidPath if malformed."""
    path = _unescape_string(escaped)
    if path is None:
        raise InvalidPath(f"invalid escaped module path {go_quote(escaped)}")
    try:
        check_path(path)
    except InvalidPath as e:
        raise InvalidPath(f"invalid escaped module path {go_quote(escaped)}: {e}") from None
    return path


def unescape_version(escaped: str) -> str:
    """The version for an escaped version; InvalidVersion if malformed."""
    version = _unescape_string(escaped)
    if version is None:
        raise InvalidVersion(f"invalid escaped version {go_quote(escaped)}")
    try:
        _check_elem(version, _FILE)
    except ValueError as e:
        raise InvalidVersion(f"invalid escaped version {go_quote(version)}: {e}") from None
    return version


# ---------------------------------------------------------------------------- semver


@dataclass(frozen=True)
class _Semver:
    """A parsed semantic version; numbers kept as digit strings like x/mod does."""

    major: str
    minor: str
    patch: str
    short: str  # what Canonical appends: ".0.0", ".0" or ""
    prerelease: str  # including the leading '-', or ""
    build: str  # including the leading '+', or ""


_NUM = r"(0|[1-9][0-9]*)"
_IDENT = r"[0-9A-Za-z-]+"
_SEMVER_RE = re.compile(
    rf"v{_NUM}(?:\.{_NUM}(?:\.{_NUM}(-{_IDENT}(?:\.{_IDENT})*)?(\+{_IDENT}(?:\.{_IDENT})*)?)?)?",
    re.ASCII,
)


@functools.lru_cache(maxsize=4096)
def _parse(v: str) -> _Semver | None:
    """Parse v as x/mod/semver does; None if invalid."""
    m = _SEMVER_RE.fullmatch(v)
    if m is None:
        return None
    major, minor, patch, pre, build = m.groups()
    if pre and any(_is_bad_num(p) for p in pre[1:].split(".")):
        return None  # numeric pre-release identifiers must not have leading zeros
    short = ".0.0" if minor is None else ".0" if patch is None else ""
    return _Semver(major, minor or "0", patch or "0", short, pre or "", build or "")


def _is_bad_num(ident: str) -> bool:
    """Whether ident is all digits with a leading zero (and longer than one)."""
    return ident.isascii() and ident.isdigit() and len(ident) > 1 and ident[0] == "0"


def is_valid_semver(v: str) -> bool:
    """Whether v is a valid semantic version with the leading 'v' (shorthands v1, v1.2 allowed)."""
    return _parse(v) is not None


def semver_canonical(v: str) -> str:
    """semver.Canonical: fill in .MINOR/.PATCH, drop build metadata; "" if invalid."""
    p = _parse(v)
    if p is None:
        return ""
    if p.build:
        return v[: len(v) - len(p.build)]
    return v + p.short


def canonical_version(v: str) -> str:
    """module.CanonicalVersion: semver_canonical but keeping "+incompatible"; "" if invalid."""
    cv = semver_canonical(v)
    if semver_build(v) == "+incompatible":
        cv += "+incompatible"
    return cv


def semver_major(v: str) -> str:
    """The major version prefix ("v2" for "v2.1.0"); "" if invalid."""
    p = _parse(v)
    return "" if p is None else "v" + p.major


def semver_prerelease(v: str) -> str:
    """The pre-release suffix including '-'; "" if none or invalid."""
    p = _parse(v)
    return "" if p is None else p.prerelease


def semver_build(v: str) -> str:
    """The build suffix including '+'; "" if none or invalid."""
    p = _parse(v)
    return "" if p is None else p.build


def compare_semver(v: str, w: str) -> int:
    """-1, 0 or +1 by semver precedence; invalid versions are below valid ones and equal to each other."""
    pv, pw = _parse(v), _parse(w)
    if pv is None or pw is None:
        return (pv is not None) - (pw is not None)
    for x, y in ((pv.major, pw.major), (pv.minor, pw.minor), (pv.patch, pw.patch)):
        c = _compare_int(x, y)
        if c:
            return c
    return _compare_prerelease(pv.prerelease, pw.prerelease)


def _compare_int(x: str, y: str) -> int:
    """Compare two digit strings without leading zeros numerically."""
    return _cmp((len(x), x), (len(y), y))


def _cmp(a: tuple[int, str], b: tuple[int, str]) -> int:
    """Three-way comparison."""
    return (a > b) - (a < b)


def _compare_prerelease(x: str, y: str) -> int:
    """Compare pre-release suffixes by semver 2.0.0 section 11 (no suffix ranks highest)."""
    if x == y:
        return 0
    if x == "":
        return 1
    if y == "":
        return -1
    xs, ys = x[1:].split("."), y[1:].split(".")
    for dx, dy in zip(xs, ys, strict=False):
        if dx == dy:
            continue
        nx, ny = dx.isascii() and dx.isdigit(), dy.isascii() and dy.isdigit()
        if nx != ny:
            return -1 if nx else 1  # numeric identifiers rank below alphanumeric ones
        if nx:
            return _compare_int(dx, dy)
        return -1 if dx < dy else 1
    return -1 if len(xs) < len(ys) else 1


def _compare_for_sort(v: str, w: str) -> int:
    """semver.Sort's order: semver precedence, then byte order so that v1 and v1.0.0 sort stably."""
    return compare_semver(v, w) or (v > w) - (v < w)


def sort_versions(versions: Iterable[str]) -> list[str]:
    """The valid semantic versions among versions, without duplicates, in ascending semver order."""
    return sorted({v for v in versions if is_valid_semver(v)}, key=functools.cmp_to_key(_compare_for_sort))


def max_version(versions: Iterable[str]) -> str:
    """The highest valid version in versions by semver order, "" if none."""
    ordered = sort_versions(versions)
    return ordered[-1] if ordered else ""


def is_pseudo_version(v: str) -> bool:
    """Whether v is a pseudo-version such as v0.0.0-20191109021931-daa7c04131f5."""
    return v.count("-") >= 2 and is_valid_semver(v) and _PSEUDO_RE.match(v) is not None


def is_canonical_version(v: str) -> bool:
    """Whether v is a valid version in canonical form (what proxies list and go.mod requires)."""
    return v != "" and canonical_version(v) == v


def match_path_major(version: str, path_major: str) -> bool:
    """Whether version fits a module path's major suffix ("" for v0/v1, "/v2", ".v1" for gopkg.in)."""
    if path_major.startswith(".v") and path_major.endswith("-unstable"):
        path_major = path_major[: -len("-unstable")]
    if version.startswith("v0.0.0-") and path_major == ".v1":
        return True  # old pseudo-versions for gopkg.in .v1 paths used v0
    m = semver_major(version)
    if path_major == "":
        return m in ("v0", "v1") or semver_build(version) == "+incompatible"
    return path_major[0] in "/." and m == path_major[1:]


def check(path: str, version: str) -> None:
    """module.Check: valid path, valid semver, and the version's major matches the path's suffix."""
    check_path(path)
    if not is_valid_semver(version):
        raise InvalidVersion(f"{path}@{version}: invalid version: not a semantic version")
    split = split_path_version(path)
    major = split[1] if split else ""
    if not match_path_major(version, major):
        want = "v0 or v1" if major == "" else major.removesuffix("-unstable")[1:]
        raise InvalidVersion(f"{path}@{version}: invalid version: should be {want}, not {semver_major(version)}")
