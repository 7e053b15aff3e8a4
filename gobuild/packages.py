"""Which directories of a module's source hold a main package, read from the package clauses."""

from __future__ import annotations

import os
import re
from pathlib import Path

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_IMPORT_C = re.compile(r'^import\s+"C"|^import\s*\((?:[^)]*\n)*?\s*"C"\s*$', re.MULTILINE)
_BUILD_IGNORE = re.compile(r"^//go:build\s+.*\bignore\b", re.MULTILINE)


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


def _counts(name: str, source: str) -> bool:
    """Whether a .go file takes part in a normal build: no tests, no `//go:build ignore` helpers."""
    if name.endswith("_test.go") or name.startswith(("_", ".")):
        return False
    header = source.split("\npackage", 1)[0]
    return not _BUILD_IGNORE.search(header)


def package_name(directory: Path) -> str | None:
    """The package in directory ("main" wins if any file says so), or None without Go files."""
    names: set[str] = set()
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return None
    for entry in entries:
        if not entry.name.endswith(".go") or not entry.is_file():
            continue
        source = Path(entry.path).read_text(encoding="utf-8", errors="replace")
        if _counts(entry.name, source) and (name := package_clause(source)):
            names.add(name)
    if not names:
        return None
    return "main" if "main" in names else sorted(names)[0]


def main_packages(module_dir: Path) -> list[str]:
    """Package dirs ("/" for the root, else "/cmd/x") holding a main package, sorted."""
    found = []
    for root, dirs, _ in os.walk(module_dir):
        here = Path(root)
        # Like `go list ./...`: skip testdata, vendor, hidden and _ dirs, and nested modules.
        dirs[:] = sorted(
            d for d in dirs
            if d not in ("testdata", "vendor") and not d.startswith((".", "_"))
            and not (here / d / "go.mod").exists()
        )
        if package_name(here) == "main":
            rel = here.relative_to(module_dir).as_posix()
            found.append("/" if rel == "." else "/" + rel)
    return found


def uses_cgo(directory: Path) -> bool:
    """Whether any Go file in directory imports "C" (so it cannot build with CGO_ENABLED=0)."""
    for f in directory.glob("*.go"):
        if not f.name.endswith("_test.go") and _IMPORT_C.search(f.read_text(encoding="utf-8", errors="replace")):
            return True
    return False
