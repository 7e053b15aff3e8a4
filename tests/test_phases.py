"""Where a build is, read from its log bytes; the log folded for the page (pure: no server)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from gobuild.phases import Phase, ProgressReader, count_compiles, marker, parse
from gobuild.web.logview import LogFolder, fold

T0 = datetime(2026, 12, 1, 17, 0, 0, tzinfo=UTC)
T1 = datetime(2026, 12, 1, 17, 0, 9, tzinfo=UTC)

# The shape of `go install -x -v` output (go1.26), shortened.
GO_X = (
    "WORK=/tmp/go-build1\n"
    "mkdir -p $WORK/b006/\n"
    "internal/goarch\n"
    "echo '# import config' > $WORK/b006/importcfg # internal\n"
    "cd /build\n"
    "/goroot/pkg/tool/linux_amd64/compile -o $WORK/b006/_pkg_.a -p internal/goarch -pack ./goarch.go\n"
    "cat >/tmp/go-build1/b001/importcfg << 'EOF' # internal\n"
    "# import config\n"
    "packagefile internal/goarch=/tmp/go-build1/b006/_pkg_.a\n"
    "EOF\n"
    "example.com/hello\n"
    "/goroot/pkg/tool/linux_amd64/compile -o $WORK/b001/_pkg_.a -p main ./main.go\n"
    "GOROOT='' /goroot/pkg/tool/linux_amd64/link -o $WORK/b001/exe/a.out -importcfg $WORK/b001/importcfg.link\n"
    "mv $WORK/b001/exe/a.out /build/go/bin/hello\n"
)


def build_log() -> str:
    return (marker(Phase.DOWNLOADING, "example.com/hello@v1.0.0", T0) + "$ go install ...\n"
            + marker(Phase.COMPILING, "2 packages", T1) + GO_X + "\n" + marker(Phase.HASHING, at=T1)
            + "built hello: 1234 bytes, sum 0abc\n")


def test_phases_follow_the_markers_and_go_output() -> None:
    seen = []
    reader = ProgressReader()
    for line in build_log().splitlines(keepends=True):
        p = reader.feed(line.encode())
        if not seen or seen[-1][0] != p.phase:
            seen.append((p.phase, p.compiled, p.total))
    assert seen == [(Phase.DOWNLOADING, 0, None), (Phase.COMPILING, 0, 2),
                    (Phase.LINKING, 2, 2), (Phase.HASHING, 2, 2), (Phase.LOGGING, 2, 2)]
    assert reader.progress.started == T0.timestamp()


def test_progress_does_not_depend_on_how_the_log_is_cut() -> None:
    data = build_log().encode()[:-40]  # mid-way through the compile lines
    whole = parse(data)
    for size in (1, 7, 64):
        reader = ProgressReader()
        for i in range(0, len(data), size):
            reader.feed(data[i:i + size])
        assert reader.feed(b"\n") == whole
    assert whole.phase == Phase.LINKING and whole.compiled == 2 and whole.since is None


def test_compiling_without_a_known_total() -> None:
    p = parse((marker(Phase.COMPILING, at=T1) + GO_X).encode())
    assert (p.phase, p.compiled, p.total, p.since) == (Phase.LINKING, 2, None, None)
    assert parse((marker(Phase.COMPILING, "5 packages", T1)).encode()).since == T1.timestamp()


def test_a_line_that_only_looks_like_a_marker_is_not_one() -> None:
    text = "gobuild: compiling 3 packages\nsome/pkg: gobuild: logging [2026-12-01T17:00:00Z]\n"
    assert parse(text.encode()).phase is None
    assert count_compiles(GO_X) == 2 and count_compiles("go: downloading x v1\n") == 0


def test_go_commands_are_folded_and_the_rest_is_escaped_text() -> None:
    html = fold(GO_X + "./main.go:3:2: undefined: <Foo> & co\n")
    shown = re.sub(r'<span class="x">[^<]*</span>', "", html).splitlines()
    assert shown == ["internal/goarch", "example.com/hello", "./main.go:3:2: undefined: &lt;Foo&gt; &amp; co"]
    assert '<span class="x"># import config\n</span>' in html  # inside the here-document
    assert '<span class="x">EOF\n</span>' in html


def test_a_here_document_stays_folded_across_pieces() -> None:
    folder = LogFolder()
    first = folder.render("cat >/tmp/w/b001/importcfg << 'EOF' # internal\n# import config\n")
    second = folder.render("# not a go error but the heredoc\nEOF\n# example.com/hello\n")
    assert first.count('class="x"') == 2
    assert second == ('<span class="x"># not a go error but the heredoc\n</span><span class="x">EOF\n</span>'
                      "# example.com/hello\n")


def test_installing_go_comes_first_and_starts_the_clock() -> None:
    text = marker(Phase.INSTALLING_GO, "go1.24.1", T0) + marker(Phase.DOWNLOADING, "example.com/hello@v1.0.0", T1)
    reader = ProgressReader()
    first = reader.feed(text.encode()[:len(text.splitlines()[0]) + 1])
    assert (first.phase, first.started) == (Phase.INSTALLING_GO, T0.timestamp())
    assert (reader.feed(text.encode()[len(text.splitlines()[0]) + 1:]).phase, reader.progress.started,
            reader.progress.since) == (Phase.DOWNLOADING, T0.timestamp(), T1.timestamp())
