"""Wire formats: build specs, sums, records, download file names, Go versions. Pure, no I/O."""

from __future__ import annotations

import base64
import hashlib
import posixpath
import re
from collections.abc import Collection
from dataclasses import dataclass

from .errors import GobuildError
from .module import InvalidPath, check_import_path, check_path


class SpecError(GobuildError, ValueError):
    """Malformed build spec, sum, record or Go version: it names nothing we serve."""

    status = 404
    code = "bad-spec"


SUM_PREFIX = "0"
SUM_BYTES = 20


def sum_from_digest(digest: bytes) -> str:
    """Encode a SHA-256 digest as gobuild's sum: "0" + base64url(first 20 bytes), unpadded."""
    return SUM_PREFIX + base64.urlsafe_b64encode(digest[:SUM_BYTES]).decode().rstrip("=")


def sum_of(data: bytes) -> str:
    """The gobuild sum of a whole binary held in memory."""
    return sum_from_digest(hashlib.sha256(data).digest())


def parse_sum(s: str) -> bytes:
    """Return the 20 hash bytes of a sum, or raise SpecError."""
    if not s.startswith(SUM_PREFIX):
        raise SpecError(f"bad sum {s!r}: must start with {SUM_PREFIX!r}")
    body = s[1:]
    if len(body) != 27 or not re.fullmatch(r"[A-Za-z0-9_-]+", body):
        raise SpecError(f"bad sum {s!r}: not 20 bytes of unpadded base64url")
    raw = base64.urlsafe_b64decode(body + "=")
    if sum_from_digest(raw) != s:  # non-canonical trailing bits
        raise SpecError(f"bad sum {s!r}: not canonical base64url")
    return raw


def is_sum(s: str) -> bool:
    """Whether s parses as a sum."""
    try:
        parse_sum(s)
    except SpecError:
        return False
    return True


# Go versions -----------------------------------------------------------------

_GOVERSION_RE = re.compile(r"go1\.(0|[1-9][0-9]*)(?:\.(0|[1-9][0-9]*))?((?:rc|beta)[1-9][0-9]*)?")
OLDEST_MINOR = 13  # reproducible builds work from go1.13 onwards


@dataclass(frozen=True, order=True)
class GoVersion:
    """A parsed Go toolchain version such as go1.26.8 or go1.27rc1."""

    minor: int
    patch: int
    suffix: str = ""  # "rc1", "beta2" or ""; ignored in comparisons like the original

    @classmethod
    def parse(cls, s: str) -> GoVersion:
        """Parse a Go version string, requiring go1.13 or newer."""
        m = _GOVERSION_RE.fullmatch(s)
        if not m:
            raise SpecError(f"bad goversion {s!r}: expected go1.<minor>[.<patch>][rcN|betaN]")
        minor, patch = int(m.group(1)), int(m.group(2) or 0)
        if minor < OLDEST_MINOR:
            raise SpecError(f"bad goversion {s!r}: reproducible builds need go1.{OLDEST_MINOR} or newer")
        return cls(minor, patch, m.group(3) or "")

    def __str__(self) -> str:
        s = f"go1.{self.minor}"
        if self.patch > 0 or (self.minor >= 21 and not self.suffix):
            s += f".{self.patch}"
        return s + self.suffix

    @property
    def key(self) -> int:
        """Comparison key without the pre-release suffix (major<<16|minor<<8|patch)."""
        return (1 << 16) | (self.minor << 8) | self.patch

    def is_release(self) -> bool:
        """Whether this is a final release rather than an rc or beta."""
        return not self.suffix


# Build specs -----------------------------------------------------------------

MAX_SPEC_LEN = 1024


@dataclass(frozen=True)
class BuildSpec:
    """What to build: module@version, package dir, target and Go version, stripped or not."""

    module: str
    version: str
    dir: str  # "/" for the module root, else "/cmd/x": starts with "/", no trailing "/"
    goos: str
    goarch: str
    goversion: str
    stripped: bool = False

    @classmethod
    def parse(cls, s: str, targets: Collection[tuple[str, str]]) -> BuildSpec:
        """Parse "<mod>@<version>/<dir/><goos>-<goarch>-<goversion>[-stripped]/"."""
        if len(s) > MAX_SPEC_LEN:
            raise SpecError("build spec too long")
        if not s.endswith("/"):
            raise SpecError("missing trailing slash")
        last = s[:-1].rpartition("/")[2]
        rest = s[: len(s) - 1 - len(last)]  # keeps the slash before the variant
        goos, goarch, goversion, stripped = _parse_variant(last, targets)
        mod, at, verdir = rest.partition("@")
        if not at or not mod:
            raise SpecError("missing @version after module path")
        if "." not in mod.split("/")[0]:
            raise SpecError("module must contain dot in its first path element")
        version, _, dirpart = verdir.partition("/")
        if not version:
            raise SpecError("empty version")
        if dirpart and not dirpart.endswith("/"):
            raise SpecError("package dir must end with slash")
        pkgdir = "/" + dirpart.rstrip("/") if dirpart else "/"
        for part in (mod, pkgdir):
            if posixpath.normpath(part) != part or part.startswith("//"):
                raise SpecError(f"path {part!r} is not clean (no '..', '.', '//' or trailing slash)")
        return cls(mod, version, pkgdir, goos, goarch, goversion, stripped)

    def __str__(self) -> str:
        return f"{self.module}@{self.version}/{self.dir_append}{self.target_variant}/"

    @property
    def dir_append(self) -> str:
        """The package dir as it appears in URLs: "" for the root, else "cmd/x/"."""
        return "" if self.dir == "/" else self.dir[1:] + "/"

    @property
    def target_variant(self) -> str:
        """The last URL element: goos-goarch-goversion[-stripped]."""
        s = f"{self.goos}-{self.goarch}-{self.goversion}"
        return s + "-stripped" if self.stripped else s

    @property
    def package(self) -> str:
        """The Go import path of the command."""
        return self.module if self.dir == "/" else self.module + self.dir

    @property
    def exec_name(self) -> str:
        """The binary's base name as `go install` chooses it (Go's DefaultExecName)."""
        head, _, elem = self.package.rpartition("/")
        if head and _is_version_element(elem):
            elem = head.rpartition("/")[2]
        return elem + (".exe" if self.goos == "windows" else "")

    @property
    def legacy_exec_name(self) -> str:
        """The name the original gobuild used: the last path element even when it is "v2"."""
        elem = self.package.rpartition("/")[2]
        return elem + (".exe" if self.goos == "windows" else "")

    def download_filename(self, legacy: bool = False) -> str:
        """<name>-<version>-<goversion>[-stripped][.exe], the binary's name in result URLs."""
        name = self.legacy_exec_name if legacy else self.exec_name
        base = name[: -len(".exe")] if self.goos == "windows" else name
        s = f"{base}-{self.version}-{self.goversion}"
        if self.stripped:
            s += "-stripped"
        return s + (".exe" if self.goos == "windows" else "")

    def link(self) -> str:
        """The build URL path (no sum)."""
        return "/" + str(self)

    def result_link(self, sum: str) -> str:
        """The result URL path for a built sum."""
        return f"/{self}{sum}/"

    def key(self) -> str:
        """The sha256 (hex) of the spec's text: its name in lock files and in the build queue's job ids."""
        return hashlib.sha256(str(self).encode()).hexdigest()

    def with_(self, **changes: object) -> BuildSpec:
        """A copy with some fields changed (cheaper than dataclasses.replace; pages make dozens)."""
        fields = dict(self.__dict__)
        fields.update(changes)
        return BuildSpec(**fields)


def check_paths(spec: BuildSpec) -> None:
    """Go's rules for the module path and the package's import path: a spec breaking them reaches no go
    command, page or worker (BuildSpec.parse checks only the spec's own syntax)."""
    try:
        check_path(spec.module)
    except InvalidPath as e:
        raise SpecError(f"bad module path: {e}") from e
    try:
        check_import_path(spec.package)
    except InvalidPath as e:
        raise SpecError(f"bad package path: {e}") from e


def _is_version_element(s: str) -> bool:
    """Whether s is a major-version suffix like v2 (not v0, v1 or v01)."""
    return len(s) >= 2 and s[0] == "v" and s[1:].isascii() and s[1:].isdigit() and s[1] != "0" and s != "v1"


def _parse_variant(last: str, targets: Collection[tuple[str, str]]) -> tuple[str, str, str, bool]:
    """Split goos-goarch-goversion[-stripped] and check the target."""
    parts = last.split("-")
    if len(parts) not in (3, 4) or (len(parts) == 4 and parts[3] != "stripped"):
        raise SpecError(f"unrecognized variant {last!r}, expected goos-goarch-goversion[-stripped]")
    goos, goarch, goversion = parts[:3]
    if (goos, goarch) not in targets:
        raise SpecError(f"unsupported target {goos}/{goarch}")
    if not goversion:
        raise SpecError("empty goversion")
    return goos, goarch, goversion, len(parts) == 4


# Records ---------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """One line of the transparency log: a successful build and its sum."""

    spec: BuildSpec
    size: int
    sum: str

    def pack(self) -> bytes:
        """The exact record text, "\\n"-terminated, with a space before it for non-stripped."""
        s = self.spec
        fields = [s.module, s.version, s.dir, s.goos, s.goarch, s.goversion, str(self.size), self.sum]
        for f in fields:
            if not f or any(c <= " " for c in f):
                raise SpecError(f"bad record field {f!r}")
        if self.size <= 0:
            raise SpecError("record size must be positive")
        fields.append("stripped" if s.stripped else "")
        return (" ".join(fields) + "\n").encode()

    @classmethod
    def parse(cls, data: bytes) -> Record:
        """Parse a record text; accepts pre-2023 records with 8 fields."""
        try:
            text = data.decode()
        except UnicodeDecodeError as e:
            raise SpecError("record is not UTF-8") from e
        if not text.endswith("\n"):
            raise SpecError("record must end with newline")
        fields = text[:-1].split(" ")
        if len(fields) not in (8, 9):
            raise SpecError(f"record has {len(fields)} fields, expected 8 or 9")
        variant = fields[8] if len(fields) == 9 else ""
        if variant not in ("", "stripped"):
            raise SpecError(f"bad record variant {variant!r}")
        mod, version, pkgdir, goos, goarch, goversion, size_s, sum_ = fields[:8]
        if not (size_s.isascii() and size_s.isdigit()):
            raise SpecError(f"bad record size {size_s!r}")
        parse_sum(sum_)
        spec = BuildSpec(mod, version, pkgdir, goos, goarch, goversion, variant == "stripped")
        return cls(spec, int(size_s), sum_)
