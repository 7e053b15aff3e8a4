"""Go-style flags: what Go's flag package accepts (--name, -name=value, -bool=false), rewritten for click."""

from __future__ import annotations

from collections.abc import Sequence

# Flags as Go's flag package would see them; cli.py declares the same names.
BOOL_FLAGS = frozenset({"stripped", "download", "quiet", "verbose"})
VALUE_FLAGS = frozenset({"verifierkey", "url", "sum", "target", "goversion", "bindir"})

_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def parse_go_bool(s: str) -> bool:
    """Parse a boolean as Go's strconv.ParseBool does."""
    if s in _GO_TRUE:
        return True
    if s in _GO_FALSE:
        return False
    raise ValueError(f"invalid boolean value {s!r}")


def normalize_go_flags(args: Sequence[str]) -> list[str]:
    """Rewrite Go flag syntax (--name, -name=value, -bool=false) into what click parses."""
    out: list[str] = []
    for i, arg in enumerate(args):
        if arg == "--":
            return out + list(args[i:])
        if not arg.startswith("-") or arg == "-":
            out.append(arg)
            continue
        name, eq, value = arg.lstrip("-").partition("=")
        if name in BOOL_FLAGS:
            on = parse_go_bool(value) if eq else True
            out.append(f"-{name}" if on else f"-no-{name}")
        elif name in VALUE_FLAGS and arg.startswith("--"):
            out.append(f"-{name}{eq}{value}")
        else:
            out.append(arg)
    return out
