"""The README's layout table names every module of the package, and nothing that is gone."""

from __future__ import annotations

import re
from pathlib import Path

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
