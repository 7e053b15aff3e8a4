"""The README's tables: the layout names every module of the package and nothing that is gone; every error code."""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path

import gobuild
from gobuild.errors import CODES_BY_STATUS, GobuildError, HTTPProblem

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "gobuild"


def layout_rows() -> dict[str, str]:
    """First column (what) → second column (what for) of the README's layout table."""
    section = (ROOT / "README.md").read_text().split("\n## Layout", 1)[1].split("\n## ", 1)[0]
    rows = [line.split(" | ", 1) for line in section.splitlines() if line.startswith("| `")]
    return {what: why for what, why in rows}


def test_layout_table_names_every_module_and_directory() -> None:
    rows = layout_rows()
    named = {name for what in rows for name in re.findall(r"`([\w/.]+)`", what)}
    modules = {p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    directories = {p.name + "/" for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert named == modules | directories


def test_layout_table_lists_the_modules_of_each_subpackage() -> None:
    for what, why in layout_rows().items():
        for directory in re.findall(r"`(\w+)/`", what):
            if (PACKAGE / directory / "__init__.py").exists():
                listed = set(re.findall(r"`(\w+\.py)`", why)) - {"__init__.py"}
                present = {p.name for p in (PACKAGE / directory).glob("*.py")} - {"__init__.py"}
                assert listed == present, directory


def error_classes() -> Iterator[type[GobuildError]]:
    """Every GobuildError class of the package (all its modules imported)."""
    for info in pkgutil.walk_packages(gobuild.__path__, "gobuild."):
        importlib.import_module(info.name)
    todo: list[type[GobuildError]] = [GobuildError]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        yield cls


def code_rows() -> dict[str, str]:
    """Code → status column of the README's table of error codes."""
    section = (ROOT / "README.md").read_text().split("\n### Errors", 1)[1].split("\n## ", 1)[0]
    rows = [line.split(" | ")[:2] for line in section.splitlines() if line.startswith("| `")]
    return {code: status for what, status in rows for code in re.findall(r"`([\w-]+)`", what)}


def test_error_code_table_lists_every_code_with_its_status() -> None:
    # HTTPProblems take their status where they are raised, and their code from CODES_BY_STATUS.
    in_code = {(cls.code, str(cls.status)) for cls in error_classes() if not issubclass(cls, HTTPProblem)}
    in_code |= {(code, str(status)) for status, code in CODES_BY_STATUS.items()} | {("error", "other")}
    assert set(code_rows().items()) == in_code


def test_readme_stands_alone() -> None:
    """The next engineer reads the README, not the notes the project was built from."""
    assert "../shared/" not in (ROOT / "README.md").read_text()
