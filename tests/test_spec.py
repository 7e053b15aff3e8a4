"""Wire formats of spec.py: sums, build specs, records, file names, Go versions (REFERENCE section 1)."""

from __future__ import annotations

import hashlib

import pytest

from gobuild.spec import BuildSpec, GoVersion, Record, SpecError, is_sum, parse_sum, sum_of
from gobuild.targets import DEFAULT_TARGETS, Targets

T = set(DEFAULT_TARGETS)


def test_sum_matches_the_python_one_liner() -> None:
    import base64

    data = b"\x7fELF some binary"
    expected = "0" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()[:20]).decode().rstrip("=")
    assert sum_of(data) == expected
    assert len(expected) == 28
    assert parse_sum(expected) == hashlib.sha256(data).digest()[:20]


@pytest.mark.parametrize("bad", ["", "1N7e6zxGtHCObqNBDA_mXKv7-A9M", "0N7e6zxGtHCObqNBDA_mXKv7-A9",
                                 "0N7e6zxGtHCObqNBDA_mXKv7-A9MM", "0N7e6zxGtHCObqNBDA+mXKv7-A9M",
                                 "0N7e6zxGtHCObqNBDA_mXKv7-A9N"])
def test_bad_sums(bad: str) -> None:
    assert not is_sum(bad)


def test_reference_sum_parses() -> None:
    assert is_sum("0N7e6zxGtHCObqNBDA_mXKv7-A9M")


@pytest.mark.parametrize("s, dir_, stripped", [
    ("github.com/mjl-/gobuild@v0.0.8/linux-amd64-go1.14.1/", "/", False),
    ("github.com/mjl-/sherpa@v0.6.0/cmd/sherpaclient/linux-amd64-go1.14.1-stripped/", "/cmd/sherpaclient", True),
])
def test_spec_round_trip(s: str, dir_: str, stripped: bool) -> None:
    spec = BuildSpec.parse(s, T)
    assert spec.dir == dir_ and spec.stripped is stripped
    assert str(spec) == s


@pytest.mark.parametrize("bad, msg", [
    ("github.com/x@v1.0.0/linux-amd64-go1.22.0", "trailing slash"),
    ("github.com/x@v1.0.0/linux-amd64/", "unrecognized variant"),
    ("github.com/x@v1.0.0/linux-amd64-go1.22.0-fat/", "unrecognized variant"),
    ("github.com/x@v1.0.0/plan10-amd64-go1.22.0/", "unsupported target"),
    ("localhost/x@v1.0.0/linux-amd64-go1.22.0/", "must contain dot"),
    ("github.com/x@/linux-amd64-go1.22.0/", "empty version"),
    ("github.com/x@v1.0.0/cmd/../y/linux-amd64-go1.22.0/", "not clean"),
    ("github.com/x@v1.0.0/cmd//y/linux-amd64-go1.22.0/", "not clean"),
    ("github.com/x/../y@v1.0.0/linux-amd64-go1.22.0/", "not clean"),
    ("github.com/x@v1.0.0/" + "a/" * 600 + "linux-amd64-go1.22.0/", "too long"),
])
def test_spec_errors(bad: str, msg: str) -> None:
    with pytest.raises(SpecError, match=msg):
        BuildSpec.parse(bad, T)


def test_download_filenames_and_exec_names() -> None:
    spec = BuildSpec.parse("github.com/mjl-/sherpa@v0.6.0/cmd/sherpaclient/linux-amd64-go1.14.1/", T)
    assert spec.download_filename() == "sherpaclient-v0.6.0-go1.14.1"
    win = BuildSpec.parse("github.com/mjl-/gobuild@v0.0.8/windows-amd64-go1.14.1-stripped/", T)
    assert win.download_filename() == "gobuild-v0.0.8-go1.14.1-stripped.exe"
    assert win.exec_name == "gobuild.exe"
    v2 = BuildSpec.parse("example.com/tool/v2@v2.1.0/linux-amd64-go1.26.8/", T)
    assert v2.exec_name == "tool"  # what `go install` writes, unlike the original's "v2"
    assert v2.download_filename() == "tool-v2.1.0-go1.26.8"
    assert v2.download_filename(legacy=True) == "v2-v2.1.0-go1.26.8"
    v1 = BuildSpec.parse("example.com/tool/v1@v1.1.0/linux-amd64-go1.26.8/", T)
    assert v1.exec_name == "v1"  # v1 is not a major-version suffix


def test_record_pack_keeps_trailing_space_and_round_trips() -> None:
    spec = BuildSpec.parse("github.com/mjl-/gobuild@v0.0.8/linux-amd64-go1.14.1/", T)
    rec = Record(spec, 10485760, "0N7e6zxGtHCObqNBDA_mXKv7-A9M")
    want = b"github.com/mjl-/gobuild v0.0.8 / linux amd64 go1.14.1 10485760 0N7e6zxGtHCObqNBDA_mXKv7-A9M \n"
    assert rec.pack() == want
    assert Record.parse(rec.pack()) == rec
    stripped = Record(spec.with_(stripped=True), 7340032, "0N7e6zxGtHCObqNBDA_mXKv7-A9M")
    assert stripped.pack().endswith(b" stripped\n")
    assert Record.parse(stripped.pack()) == stripped


def test_record_parse_accepts_eight_field_records() -> None:
    rec = Record.parse(b"github.com/mjl-/gobuild v0.0.8 / linux amd64 go1.14.1 10 0N7e6zxGtHCObqNBDA_mXKv7-A9M\n")
    assert rec.size == 10 and not rec.spec.stripped


@pytest.mark.parametrize("bad", [
    b"a v1 / linux amd64 go1.22.0 10 0N7e6zxGtHCObqNBDA_mXKv7-A9M ",  # no newline
    b"a v1 / linux amd64 go1.22.0 10 0N7e6zxGtHCObqNBDA_mXKv7-A9M fat\n",
    b"a v1 / linux amd64 go1.22.0 ten 0N7e6zxGtHCObqNBDA_mXKv7-A9M \n",
    b"a v1 / linux amd64 go1.22.0 10 0bad \n",
    b"a v1 / linux amd64 10 0N7e6zxGtHCObqNBDA_mXKv7-A9M \n",
])
def test_record_parse_errors(bad: bytes) -> None:
    with pytest.raises(SpecError):
        Record.parse(bad)


def test_record_pack_refuses_spaces() -> None:
    spec = BuildSpec("a b.com", "v1.0.0", "/", "linux", "amd64", "go1.22.0")
    with pytest.raises(SpecError):
        Record(spec, 1, "0N7e6zxGtHCObqNBDA_mXKv7-A9M").pack()


@pytest.mark.parametrize("s, canonical", [
    ("go1.14.1", "go1.14.1"), ("go1.20", "go1.20"), ("go1.20.0", "go1.20"), ("go1.21.0", "go1.21.0"),
    ("go1.26.8", "go1.26.8"), ("go1.27rc1", "go1.27rc1"), ("go1.22beta2", "go1.22beta2"),
])
def test_goversion_parse_and_print(s: str, canonical: str) -> None:
    assert str(GoVersion.parse(s)) == canonical


@pytest.mark.parametrize("bad", ["go1.12", "go2.0", "1.22.0", "go1.22.", "go1.022", "latest", "go1.22rc"])
def test_goversion_errors(bad: str) -> None:
    with pytest.raises(SpecError):
        GoVersion.parse(bad)


def test_goversion_order_ignores_suffix() -> None:
    assert GoVersion.parse("go1.26.8").key > GoVersion.parse("go1.26.1").key > GoVersion.parse("go1.25.0").key
    assert GoVersion.parse("go1.27rc1").key == GoVersion.parse("go1.27.0").key


@pytest.mark.parametrize("ua, target", [
    ("Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0", ("linux", "amd64")),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36", ("windows", "amd64")),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7)", ("darwin", "arm64")),
    ("curl/8.5.0", ("linux", "amd64")),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Mobile Safari/537.36", ("android", "arm64")),
    ("Mozilla/5.0 (X11; Linux aarch64; rv:128.0) Gecko/20100101 Firefox/128.0", ("linux", "arm64")),
    ("Mozilla/5.0 (X11; Ubuntu; Linux arm64) Chrome/120.0", ("linux", "arm64")),
    ("Mozilla/5.0 (X11; Linux armv7l) Chrome/120.0", ("linux", "arm")),
    ("Mozilla/5.0 (Windows NT 10.0; ARM64) Edge/120.0", ("windows", "arm64")),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Safari/604.1", ("ios", "arm64")),
    ("Mozilla/5.0 (X11; FreeBSD amd64; rv:120.0) Firefox/120.0", ("freebsd", "amd64")),
])
def test_user_agent_guess(ua: str, target: tuple[str, str]) -> None:
    assert Targets().guess(ua) == target
