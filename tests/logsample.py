"""A synthetic `go install -x` build log of any size, and a count of the log bytes the live readers read."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from gobuild.phases import Phase, marker
from gobuild.web import live

if TYPE_CHECKING:  # bench/logresume.py uses this module without pytest
    import pytest

AT = datetime(2026, 1, 1, tzinfo=UTC)  # fixed: the same log on every run
# Longer than a read, and only its end opens a here-document: read in pieces, it folds otherwise.
LONG_LINE = "cd /src/" + "x" * 70_000 + " << 'EOF' # a very long line\nplain text in a here-document\nEOF\n"


def package_block(i: int) -> str:
    """What -x prints for one package: a here-document, a compile command, then go's and the build's own lines."""
    return (f"mkdir -p $WORK/b{i:04d}/\n"
            f"cat >/tmp/go-build1/b{i:04d}/importcfg << 'EOF' # internal\n"
            "# import config\n"
            f"packagefile fmt=/cache/{i:04x}-d\n"
            "EOF\n"
            f"cd /src/pkg{i}\n"
            f"/goroot/pkg/tool/linux_amd64/compile -o $WORK/b{i:04d}/_pkg_.a -trimpath \"$WORK/b{i:04d}=>\" "
            f"-p example.com/m/pkg{i} -lang=go1.22 -complete -pack ./a.go ./b.go\r\n"
            f"example.com/m/pkg{i}\n"
            f"note: ünïcode ✓ & <tags> in package {i}\n")


def xlog(size: int) -> bytes:
    """size bytes of log: two markers, then package blocks, LONG_LINE after the 500th;
    the last line is cut short, as while the build still writes it."""
    head = marker(Phase.DOWNLOADING, "example.com/m@v1.0.0", AT) + marker(Phase.COMPILING, "61 packages", AT)
    parts, total, i = [head], len(head), 0
    while total < size:
        block = package_block(i) + (LONG_LINE if i == 500 else "")
        parts.append(block)
        total += len(block.encode())
        i += 1
    return "".join(parts).encode()[:size]


def count_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """From now on, the size of each read of a job's log by the live endpoints."""
    sizes: list[int] = []
    real = live.LogTail.read

    def counting(tail: live.LogTail, whole_lines: bool = True) -> bytes:
        data = real(tail, whole_lines)
        sizes.append(len(data))
        return data

    monkeypatch.setattr(live.LogTail, "read", counting)
    return sizes
