"""The few facts version resolution needs from a go.mod file: its retractions and whether it is synthesized.

The go command reads these with golang.org/x/mod/modfile in lax mode; this reads the same
syntax (line comments, quoted tokens, `verb ( ... )` blocks, `[low, high]` intervals) for the
`retract` directive only. As in go, a malformed retraction voids all of them: go then treats
the file as unreadable and retracts nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from . import module

# Tokens of x/mod/modfile's lexer: quoted strings, single-character punctuation, identifiers.
_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|`[^`]*`|[()\[\],]|[^\s()\[\],"`]+')


class Malformed(ValueError):
    """A retract directive go would refuse."""


def legacy_go_mod(module_path: str) -> bytes:
    """The go.mod a proxy synthesizes for a version without one (modfetch.LegacyGoMod)."""
    return f"module {_auto_quote(module_path)}\n".encode()


def has_go_mod(module_path: str, data: bytes) -> bool:
    """Whether a proxy's .mod answer is the module's own go.mod rather than a synthesized one."""
    return data != legacy_go_mod(module_path)


def retractions(data: bytes) -> list[tuple[str, str]]:
    """The (low, high) version intervals a go.mod retracts; [] if it has none or go could not parse them."""
    try:
        return list(_retractions(data.decode("utf-8")))
    except (Malformed, UnicodeDecodeError):
        return []


def is_retracted(version: str, intervals: list[tuple[str, str]]) -> bool:
    """Whether version lies in one of the retracted intervals (semver order, build metadata ignored)."""
    return any(module.compare_semver(low, version) <= 0 <= module.compare_semver(high, version)
               for low, high in intervals)


def _retractions(text: str) -> Iterator[tuple[str, str]]:
    """Yield the intervals of every retract line, in and out of blocks."""
    block = ""  # the verb of the `verb (` block we are in
    for line in text.split("\n"):
        tokens = _TOKEN.findall(_strip_comment(line))
        if not tokens:
            continue
        if block:
            if tokens == [")"]:
                block = ""
            elif block == "retract":
                yield _interval(tokens)
            continue
        if len(tokens) == 2 and tokens[1] == "(":
            block = tokens[0]
        elif tokens[0] == "retract":
            yield _interval(tokens[1:])


def _strip_comment(line: str) -> str:
    """line without its // comment; // inside a quoted token does not start one."""
    i, quote = 0, ""
    while i < len(line):
        c = line[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 1
            elif c == quote:
                quote = ""
        elif c in "\"`":
            quote = c
        elif line.startswith("//", i):
            return line[:i]
        i += 1
    return line


def _interval(args: list[str]) -> tuple[str, str]:
    """`v1.2.3` or `[v1.0.0, v1.1.0]` as (low, high)."""
    if len(args) == 1:
        v = _version(args[0])
        return v, v
    if len(args) == 5 and (args[0], args[2], args[4]) == ("[", ",", "]"):
        low, high = _version(args[1]), _version(args[3])
        if module.compare_semver(low, high) > 0:
            raise Malformed(f"version interval [{low}, {high}] is backwards")
        return low, high
    raise Malformed("usage: retract version or retract [low, high]")


def _version(token: str) -> str:
    """A canonical version token, quoted or not (modfile.parseVersion without fixes)."""
    if token[:1] in ('"', "`"):
        token = token[1:-1]
    if not module.is_canonical_version(token) or module.semver_build(token) not in ("", "+incompatible"):
        raise Malformed(f"version {token!r} must be of the form v1.2.3")
    return token


def _auto_quote(s: str) -> str:
    """modfile.AutoQuote: quote s when it would not read back as one bare token."""
    if s == "" or any(c.isspace() or c in '"\'`()[]{},' for c in s) or "//" in s or "/*" in s:
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return s
