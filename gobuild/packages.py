"""Which directories of a module hold a main package, as `go list` sees them for one target.

The file selection of go/build with CGO_ENABLED=0: `//go:build` lines (else `// +build` lines)
in the file header, GOOS/GOARCH file-name suffixes, `_test.go`, `_`/`.` files, files that import
"C", and the `documentation` package are left out; `go list ./...` skips testdata, vendor, `_`
and `.` directories and nested modules. No library evaluates Go build constraints, hence the
small parser below (golang.org/x/go/build/constraint's grammar).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .spec import GoVersion, SpecError

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_IMPORT_C = re.compile(r'^import\s+"C"', re.MULTILINE)
_IMPORT_BLOCK = re.compile(r"^import\s*\(([^)]*)\)", re.MULTILINE)
_C_LINE = re.compile(r'^\s*"C"\s*(?://.*)?$', re.MULTILINE)
_EXPR_TOKEN = re.compile(r"\s*(\|\||&&|!|\(|\)|[A-Za-z0-9_.]+)")

# internal/syslist: what a file-name suffix may name, and which systems the `unix` tag covers.
KNOWN_OS = frozenset(["aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos", "ios", "js", "linux",
                      "nacl", "netbsd", "openbsd", "plan9", "solaris", "wasip1", "windows", "zos"])
UNIX_OS = frozenset(["aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos", "ios", "linux", "netbsd",
                     "openbsd", "solaris"])
KNOWN_ARCH = frozenset(["386", "amd64", "amd64p32", "arm", "armbe", "arm64", "arm64be", "loong64", "mips", "mipsle",
                        "mips64", "mips64le", "mips64p32", "mips64p32le", "ppc", "ppc64", "ppc64le", "riscv", "riscv64",
                        "s390", "s390x", "sparc", "sparc64", "wasm"])
# The default microarchitecture level tags (internal/buildcfg.ToolTags without GOAMD64 etc. set).
_ARCH_LEVEL_TAGS = {"amd64": ("amd64.v1",), "arm64": ("arm64.v8.0",), "386": ("386.sse2",),
                    "ppc64": ("ppc64.power8",), "ppc64le": ("ppc64le.power8",), "riscv64": ("riscv64.rva20u64",)}
_IMPLIED_OS = {"android": "linux", "illumos": "solaris", "ios": "darwin"}
NEWEST_MINOR = 99  # without a Go version every go1.N release tag holds


@dataclass(frozen=True)
class Target:
    """The build context: GOOS, GOARCH and the Go version (for go1.N tags); cgo always off."""

    goos: str = "linux"
    goarch: str = "amd64"
    go_minor: int = NEWEST_MINOR

    @classmethod
    def of(cls, goos: str, goarch: str, goversion: str = "") -> Target:
        """The target of a build spec; an unparseable Go version allows every go1.N tag."""
        try:
            minor = GoVersion.parse(goversion).minor
        except SpecError:
            minor = NEWEST_MINOR
        return cls(goos, goarch, minor)

    def has_tag(self, tag: str) -> bool:
        """go/build's matchTag with CgoEnabled false and no -tags."""
        if tag in (self.goos, self.goarch, "gc", _IMPLIED_OS.get(self.goos)):
            return True
        if tag == "unix":
            return self.goos in UNIX_OS
        if tag in _ARCH_LEVEL_TAGS.get(self.goarch, ()):
            return True
        m = re.fullmatch(r"go1\.([1-9][0-9]*)", tag)
        return m is not None and int(m.group(1)) <= self.go_minor


# ---------------------------------------------------------------------------- build constraints


class ConstraintError(ValueError):
    """A //go:build line go cannot parse (go build then fails on the file)."""


def eval_go_build(expr: str, has_tag: Callable[[str], bool]) -> bool:
    """Evaluate a //go:build expression: || over && over ! and parentheses, tags as leaves."""
    tokens, pos = [], 0
    while pos < len(expr.rstrip()):
        m = _EXPR_TOKEN.match(expr, pos)
        if m is None:
            raise ConstraintError(f"unexpected {expr[pos:].strip()[:20]!r} in //go:build line")
        tokens.append(m.group(1))
        pos = m.end()
    value, rest = _or(tokens, has_tag)
    if rest:
        raise ConstraintError(f"unexpected {rest[0]!r} in //go:build line")
    return value


def _or(tokens: list[str], has_tag: Callable[[str], bool]) -> tuple[bool, list[str]]:
    return _binary(tokens, has_tag, "||", _and)


def _and(tokens: list[str], has_tag: Callable[[str], bool]) -> tuple[bool, list[str]]:
    return _binary(tokens, has_tag, "&&", _not)


_Parser = Callable[[list[str], Callable[[str], bool]], tuple[bool, list[str]]]


def _binary(tokens: list[str], has_tag: Callable[[str], bool], op: str, operand: _Parser) -> tuple[bool, list[str]]:
    """operand (op operand)*, evaluated left to right; || and && are associative."""
    value, tokens = operand(tokens, has_tag)
    while tokens[:1] == [op]:
        right, tokens = operand(tokens[1:], has_tag)
        value = (value or right) if op == "||" else (value and right)
    return value, tokens


def _not(tokens: list[str], has_tag: Callable[[str], bool]) -> tuple[bool, list[str]]:
    if not tokens:
        raise ConstraintError("unexpected end of //go:build line")
    head, rest = tokens[0], tokens[1:]
    if head == "!":
        value, rest = _not(rest, has_tag)
        return not value, rest
    if head == "(":
        value, rest = _or(rest, has_tag)
        if rest[:1] != [")"]:
            raise ConstraintError("missing ) in //go:build line")
        return value, rest[1:]
    if head in ("||", "&&", ")"):
        raise ConstraintError(f"unexpected {head!r} in //go:build line")
    return has_tag(head), rest


def eval_plus_build(line: str, has_tag: Callable[[str], bool]) -> bool | None:
    """One `// +build a,b !c` line: OR of terms, each an AND of (negated) tags; None if malformed (ignored)."""
    terms = line.split()[1:]
    result = False
    for term in terms:
        atoms = term.split(",")
        if any(not re.fullmatch(r"!?[A-Za-z0-9_.]+", a) for a in atoms):
            return None
        result = result or all(has_tag(a.removeprefix("!")) != a.startswith("!") for a in atoms)
    return result


def _header(source: str) -> tuple[list[str], str | None]:
    """The // lines of the leading comment block that end before a blank line, and the //go:build line.

    go/build's parseFileHeader: // +build lines count only in that block; //go:build anywhere
    before the first non-comment line. Two //go:build lines make the file invalid (ConstraintError).
    """
    block_end, lines, go_build = 0, source.split("\n"), None
    ended = in_star = False  # ended: past the first line that is neither blank nor //
    for i, raw in enumerate(lines):
        line = raw.strip()
        if not line and not ended:
            block_end = i
            continue
        ended = ended or not line.startswith("//")
        if not in_star and re.match(r"//go:build(\s|$)", line):
            if go_build is not None:
                raise ConstraintError("multiple //go:build comments")
            go_build = line[len("//go:build"):]
        rest = line
        while rest and (in_star or not rest.startswith("//")):
            if in_star:
                if "*/" not in rest:
                    break
                rest, in_star = rest.split("*/", 1)[1].strip(), False
            elif rest.startswith("/*"):
                rest, in_star = rest[2:].strip(), True
            else:  # code: the header is over
                return _plus_build_block(lines, block_end), go_build
    return _plus_build_block(lines, block_end), go_build


def _plus_build_block(lines: list[str], end: int) -> list[str]:
    """The // lines before line end."""
    return [ln.strip() for ln in lines[:end] if ln.strip().startswith("//")]


def constraints_allow(source: str, target: Target) -> bool:
    """Whether a file's build constraints hold for target (ConstraintError for a bad //go:build)."""
    comments, go_build = _header(source)
    if go_build is not None:
        return eval_go_build(go_build, target.has_tag)
    for line in comments:
        text = line[2:].strip()
        is_plus_build = text.startswith("+build") and (len(text) == 6 or text[6].isspace())
        if is_plus_build and eval_plus_build(text, target.has_tag) is False:
            return False
    return True


def name_allows(name: str, target: Target) -> bool:
    """go/build's goodOSArchFile: a _GOOS, _GOARCH or _GOOS_GOARCH suffix must match the target."""
    parts = name.split(".", 1)[0].split("_")[1:]  # everything before the first _ does not count
    if parts[-1:] == ["test"]:
        parts = parts[:-1]
    if len(parts) >= 2 and parts[-2] in KNOWN_OS and parts[-1] in KNOWN_ARCH:
        return target.has_tag(parts[-2]) and target.has_tag(parts[-1])
    if parts and (parts[-1] in KNOWN_OS or parts[-1] in KNOWN_ARCH):
        return target.has_tag(parts[-1])
    return True


# ---------------------------------------------------------------------------- packages


def package_clause(source: str) -> str | None:
    """The package name a Go file declares, skipping leading comments; None if there is none."""
    i, n = 0, len(source)
    if source.startswith("\ufeff"):
        i = 1
    while i < n:
        if source[i].isspace():
            i += 1
        elif source.startswith("//", i):
            j = source.find("\n", i)
            i = n if j < 0 else j + 1
        elif source.startswith("/*", i):
            j = source.find("*/", i + 2)
            if j < 0:
                return None
            i = j + 2
        else:
            break
    if not source.startswith("package", i):
        return None
    m = _IDENT.match(source[i + len("package"):].lstrip(" \t"))
    return m.group(0) if m else None


def _imports_c(source: str) -> bool:
    """Whether a Go file imports "C" (imports come before the first declaration)."""
    head = re.split(r"^(?:func|type|var|const)\b", source, maxsplit=1, flags=re.MULTILINE)[0]
    return _IMPORT_C.search(head) is not None or any(_C_LINE.search(b) for b in _IMPORT_BLOCK.findall(head))


@dataclass
class Package:
    """What go/build finds in one directory for one target."""

    has_go: bool = False  # any .go file at all, whatever its constraints
    names: set[str] = field(default_factory=set)  # package clauses of the files this target compiles
    cgo_names: set[str] = field(default_factory=set)  # ... of the files left out because they import "C"
    invalid: bool = False  # a file go refuses (bad //go:build line): go build fails

    @property
    def is_command(self) -> bool:
        """Whether `go build` for the target sees exactly one package, and it is main."""
        return self.names == {"main"} and not self.invalid


def scan(directory: Path, target: Target) -> Package:
    """The Go files of directory as go/build selects them for target."""
    pkg = Package()
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return pkg
    for entry in entries:
        name = entry.name
        if not name.endswith(".go") or not entry.is_file():
            continue
        pkg.has_go = True
        if name.endswith("_test.go") or name.startswith(("_", ".")) or not name_allows(name, target):
            continue
        source = Path(entry.path).read_text(encoding="utf-8", errors="replace")
        try:
            if not constraints_allow(source, target):
                continue
        except ConstraintError:
            pkg.invalid = True
            continue
        clause = package_clause(source)
        if clause is None or clause == "documentation":
            continue
        (pkg.cgo_names if _imports_c(source) else pkg.names).add(clause)
    return pkg


def main_packages(module_dir: Path, target: Target) -> list[str]:
    """Package dirs ("/" for the root, else "/cmd/x") that are commands for target, sorted."""
    found = []
    for root, dirs, _ in os.walk(module_dir):
        here = Path(root)
        # Like `go list ./...`: skip testdata, vendor, hidden and _ dirs, and nested modules.
        dirs[:] = sorted(
            d for d in dirs
            if d not in ("testdata", "vendor") and not d.startswith((".", "_"))
            and not (here / d / "go.mod").exists()
        )
        if scan(here, target).is_command:
            rel = here.relative_to(module_dir).as_posix()
            found.append("/" if rel == "." else "/" + rel)
    return sorted(found)  # by path, as go list orders them ("a-b/x" before "a/x")
