"""`gobuild get` and `gobuild genkey`: lookups through a served TransparencyLog, verified downloads, exit codes."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from gobuild import get as getmod
from gobuild import urls
from gobuild.cli import main
from gobuild.spec import BuildSpec, Record, sum_from_digest
from gobuild.tlog import note, server
from gobuild.tlog.server import LogError, TransparencyLog
from tests.conftest import GOVERSION
from tests.modproxy import ModuleProxy, hello_module
from tests.realserver import ROOT, real_server

NAME = "gobuild.test"
SKEY, VKEY = note.new_keys(NAME, bytes(range(1, 33)))
GOV = "go1.26.8"


class GetServer:
    """A gobuild-like server on 127.0.0.1: /tlog from a TransparencyLog, plus the .gz files it was given."""

    def __init__(self, log: TransparencyLog) -> None:
        self.log = log
        self.keys: dict[str, int] = {}  # lookup key -> record number
        self.files: dict[str, bytes] = {}  # URL path -> body
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = urllib.parse.unquote(self.path)
                outer.requests.append(path)
                status, body = outer.respond(path)
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.url = self.base + "/tlog"
        threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True).start()

    def respond(self, path: str) -> tuple[int, bytes]:
        """Return status and body for a request path."""
        try:
            if path == "/tlog/latest":
                return 200, self.log.signed_tree_head()
            if path.startswith("/tlog/lookup/"):
                n = self.keys.get(path[len("/tlog/lookup/"):])
                return (404, b"not found\n") if n is None else (200, self.log.lookup_response(n))
            if path.startswith("/tlog/tile/"):
                return 200, self.log.tile(path[len("/tlog/tile/"):])[0]
        except LogError as e:
            return e.status, str(e).encode()
        body = self.files.get(path)
        return (404, b"not found\n") if body is None else (200, body)

    def publish(self, spec: BuildSpec, binary: bytes, *keys: str, served: bytes | None = None,
                legacy: bool = False) -> Record:
        """Log a build of spec, serve its .gz (of served, if given, instead of binary) and answer keys."""
        record = Record(spec, len(binary), sum_from_digest(hashlib.sha256(binary).digest()))
        n = self.log.append(record.pack())
        for key in (str(spec), *keys):
            self.keys[key] = n
        path = f"{spec.result_link(record.sum)}{spec.download_filename(legacy)}.gz"
        self.files[path] = gzip.compress(binary if served is None else served, mtime=0)
        return record

    def close(self) -> None:
        """Stop serving."""
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(autouse=True)
def no_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip the log's fsyncs: these tests are about the client."""
    monkeypatch.setattr(server.os, "fsync", lambda fd: None)


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[GetServer]:
    """A served empty log."""
    s = GetServer(TransparencyLog(tmp_path / "log", SKEY))
    yield s
    s.close()
    s.log.close()


@pytest.fixture
def bindir(tmp_path: Path) -> Path:
    """An empty directory to write binaries to."""
    d = tmp_path / "bin"
    d.mkdir()
    return d


def hello(version: str = "v1.0.0", **changes: object) -> BuildSpec:
    """The spec of example.com/hello for linux/amd64."""
    return BuildSpec("example.com/hello", version, "/", "linux", "amd64", GOV).with_(**changes)


BINARY = b"\x7fELF" + bytes(range(256)) * 300


def get(srv: GetServer, bindir: Path, *args: str, key: str | None = VKEY) -> int:
    """Run `gobuild get` against srv for linux/amd64 into bindir."""
    flags = ["-url", srv.url, "-target", "linux/amd64", "-bindir", str(bindir)]
    if key is not None:
        flags[:0] = ["-verifierkey", key]
    return main(["get", *flags, *args])


def state() -> Path:
    """The client's state dir for NAME (conftest points XDG_CACHE_HOME into a temp HOME)."""
    return Path(os.environ["XDG_CACHE_HOME"]) / "gobuild" / "sumclient" / NAME


# --- the happy path ------------------------------------------------------------------------------


def test_get_latest_writes_verified_executable(srv: GetServer, bindir: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    srv.publish(hello("v0.9.0"), b"old binary")
    rec = srv.publish(hello(), BINARY, "example.com/hello@latest/linux-amd64-latest/")
    assert get(srv, bindir, "example.com/hello") == 0
    dst = bindir / "hello"
    assert dst.read_bytes() == BINARY
    assert os.listdir(bindir) == ["hello"]
    mode = stat.S_IMODE(dst.stat().st_mode)
    assert mode & 0o100 and (mode & 0o444) >> 2 == mode & 0o111  # executable wherever readable
    err = capsys.readouterr().err
    assert f"resolved to example.com/hello@v1.0.0/linux-amd64-{GOV}/, sum {rec.sum}" in err
    assert f"writing to {dst}, size 0.1mb" in err
    # State as the original keeps it: key, latest tree head, authenticated tiles.
    assert (state() / "config" / "key").read_text().strip() == VKEY
    assert (state() / "config" / NAME / "latest").read_bytes() == srv.log.signed_tree_head()
    assert (state() / "cache" / NAME / "tile" / "8" / "0" / "000.p" / "2").exists()


def test_package_in_subdir_and_stripped(srv: GetServer, bindir: Path) -> None:
    spec = hello(dir="/cmd/tool", stripped=True)
    srv.publish(spec, BINARY)
    assert get(srv, bindir, "-stripped", "-goversion", GOV, "-quiet", "example.com/hello@v1.0.0/cmd/tool/") == 0
    assert (bindir / "tool").read_bytes() == BINARY


def test_major_version_suffix_named_like_go_install_with_legacy_fallback(srv: GetServer, bindir: Path) -> None:
    # An original gobuild serves /v2 binaries under "v2-..."; the file is still saved as go install names it.
    spec = BuildSpec("example.com/tool/v2", "v2.0.0", "/", "windows", "amd64", GOV)
    srv.publish(spec, BINARY, legacy=True)
    assert main(["get", "-verifierkey", VKEY, "-url", srv.url, "-target", "windows/amd64", "-goversion", GOV,
                 "-bindir", str(bindir), "example.com/tool/v2@v2.0.0"]) == 0
    assert (bindir / "tool.exe").read_bytes() == BINARY
    assert any(p.endswith("/v2-v2.0.0-go1.26.8.exe.gz") for p in srv.requests)


def test_download_false_only_verifies(srv: GetServer, bindir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rec = srv.publish(hello(), BINARY)
    assert get(srv, bindir, "-download=false", "-goversion", GOV, "example.com/hello@v1.0.0") == 0
    assert os.listdir(bindir) == []
    assert f"sum {rec.sum}" in capsys.readouterr().err
    assert not any(p.endswith(".gz") for p in srv.requests)


def test_go_flag_syntax(srv: GetServer, bindir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    srv.publish(hello(), BINARY)
    args = ["get", f"--verifierkey={VKEY}", f"-url={srv.url}", "-target=linux/amd64", f"-goversion={GOV}",
            f"-bindir={bindir}", "-quiet=true", "-download=0", "example.com/hello@v1.0.0"]
    assert main(args) == 0
    assert capsys.readouterr().err == ""


# --- -sum ----------------------------------------------------------------------------------------


def test_sum_matches(srv: GetServer, bindir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rec = srv.publish(hello(), BINARY)
    assert get(srv, bindir, "-sum", rec.sum, "-goversion", GOV, "example.com/hello@v1.0.0") == 0
    assert (bindir / "hello").read_bytes() == BINARY
    assert "resolved to" not in capsys.readouterr().err  # nothing was resolved


def test_sum_mismatch(srv: GetServer, bindir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rec = srv.publish(hello(), BINARY)
    other = sum_from_digest(hashlib.sha256(b"other").digest())
    assert get(srv, bindir, "-sum", other, "-goversion", GOV, "example.com/hello@v1.0.0") == 1
    err = capsys.readouterr().err
    assert f"remote has different sum {rec.sum}, expected {other}" in err and err.count("\n") == 1
    assert os.listdir(bindir) == []


def test_sum_needs_exact_spec(srv: GetServer, bindir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rec = srv.publish(hello(), BINARY, "example.com/hello@latest/linux-amd64-latest/")
    assert get(srv, bindir, "-sum", rec.sum, "example.com/hello") == 1
    assert f"lookup resolved to example.com/hello@v1.0.0/linux-amd64-{GOV}/" in capsys.readouterr().err
    assert os.listdir(bindir) == []


def test_bad_sum_is_usage_error(srv: GetServer, bindir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert get(srv, bindir, "-sum", "0abc", "example.com/hello@v1.0.0") == 2
    assert "bad -sum" in capsys.readouterr().err
    assert srv.requests == []


# --- downloads that must not be written ----------------------------------------------------------


def test_download_with_wrong_hash_leaves_nothing(srv: GetServer, bindir: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    evil = bytearray(BINARY)
    evil[1000] ^= 1
    rec = srv.publish(hello(), BINARY, served=bytes(evil))
    assert get(srv, bindir, "-goversion", GOV, "example.com/hello@v1.0.0") == 1
    got = sum_from_digest(hashlib.sha256(evil).digest())
    assert f"downloaded binary has sum {got}, expected {rec.sum}" in capsys.readouterr().err
    assert os.listdir(bindir) == []


def test_download_larger_than_record_stops_early(srv: GetServer, bindir: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    srv.publish(hello(), BINARY, served=BINARY + bytes(10 << 20))
    assert get(srv, bindir, "-goversion", GOV, "example.com/hello@v1.0.0") == 1
    assert "larger than the" in capsys.readouterr().err
    assert os.listdir(bindir) == []


def test_download_not_gzip(srv: GetServer, bindir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rec = srv.publish(hello(), BINARY)
    srv.files[f"{hello().result_link(rec.sum)}{hello().download_filename()}.gz"] = gzip.compress(BINARY)[:-20]
    assert get(srv, bindir, "-goversion", GOV, "example.com/hello@v1.0.0") == 1
    assert "not valid gzip" in capsys.readouterr().err
    assert os.listdir(bindir) == []


def test_existing_destination_refused_before_lookup(srv: GetServer, bindir: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    srv.publish(hello(), BINARY)
    (bindir / "hello").write_bytes(b"mine")
    assert get(srv, bindir, "-goversion", GOV, "example.com/hello@v1.0.0") == 1
    assert "already exists" in capsys.readouterr().err
    assert (bindir / "hello").read_bytes() == b"mine" and os.listdir(bindir) == ["hello"]
    assert srv.requests == []


def test_destination_appearing_during_download_is_not_replaced(bindir: Path) -> None:
    rec = Record(hello(), len(BINARY), sum_from_digest(hashlib.sha256(BINARY).digest()))
    dst = bindir / "hello"

    def chunks() -> Iterator[bytes]:
        yield gzip.compress(BINARY)
        dst.write_bytes(b"raced")

    with pytest.raises(getmod.GetError, match="already exists"):
        getmod.write_verified(chunks(), bindir, dst, rec, lambda n: None)
    assert dst.read_bytes() == b"raced" and os.listdir(bindir) == ["hello"]


def test_lookup_not_found(srv: GetServer, bindir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert get(srv, bindir, "example.com/nothing@v1.0.0") == 1
    err = capsys.readouterr().err
    assert "404" in err and "not found" in err and err.count("\n") == 1  # the server's own words


def test_server_answering_for_another_module_is_refused(srv: GetServer, bindir: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    srv.publish(BuildSpec("example.com/evil", "v1.0.0", "/", "linux", "amd64", GOV), BINARY,
                f"example.com/hello@v1.0.0/linux-amd64-{GOV}/")
    assert get(srv, bindir, "-goversion", GOV, "example.com/hello@v1.0.0") == 1
    assert "with a record for example.com/evil@v1.0.0" in capsys.readouterr().err
    assert os.listdir(bindir) == []


# --- keys and the log's history ------------------------------------------------------------------


def test_key_and_url_from_config_dir(srv: GetServer, bindir: Path) -> None:
    srv.publish(hello(), BINARY)
    confdir = Path(os.environ["XDG_CONFIG_HOME"]) / "gobuild"
    confdir.mkdir(parents=True)
    (confdir / "verifierkey").write_text(f"# our server\n{VKEY}\n")
    (confdir / "url").write_text(srv.url + "\n")
    assert main(["get", "-target", "linux/amd64", "-goversion", GOV, "-bindir", str(bindir),
                 "example.com/hello@v1.0.0"]) == 0
    assert (bindir / "hello").read_bytes() == BINARY


def test_config_url_is_not_used_for_another_key(tmp_path: Path) -> None:
    (tmp_path / "verifierkey").write_text(VKEY)
    (tmp_path / "url").write_text("http://127.0.0.1:1/tlog")
    other = note.new_keys("other", bytes(32))[1]
    assert getmod.resolve_key_and_url(getmod.Options(), tmp_path)[1] == "http://127.0.0.1:1/tlog"
    assert getmod.resolve_key_and_url(getmod.Options(verifierkey=other), tmp_path)[1] == "http://other:8000/tlog"
    flag = getmod.Options(url="http://127.0.0.1:2/tlog/")
    assert getmod.resolve_key_and_url(flag, tmp_path)[1] == "http://127.0.0.1:2/tlog"


def test_no_key_is_usage_error(srv: GetServer, bindir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert get(srv, bindir, "example.com/hello@v1.0.0", key=None) == 2
    err = capsys.readouterr().err
    assert "no verifier key" in err and "verifierkey" in err and "Traceback" not in err


@pytest.mark.parametrize("key", ["notyet", VKEY[:-2] + "AA", SKEY])
def test_bad_key_is_usage_error(srv: GetServer, bindir: Path, capsys: pytest.CaptureFixture[str], key: str) -> None:
    assert get(srv, bindir, "example.com/hello@v1.0.0", key=key) == 2
    assert "bad verifier key from -verifierkey" in capsys.readouterr().err
    assert srv.requests == []


def test_different_key_for_same_name_refused(srv: GetServer, bindir: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    srv.publish(hello(), BINARY)
    assert get(srv, bindir, "-download=false", "-goversion", GOV, "example.com/hello@v1.0.0") == 0
    other = note.new_keys(NAME, bytes(32))[1]
    assert get(srv, bindir, "-download=false", "-goversion", GOV, "example.com/hello@v1.0.0", key=other) == 1
    assert "different key for name in verifierkey" in capsys.readouterr().err


def test_rewritten_log_is_security_error(srv: GetServer, bindir: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    srv.publish(hello("v0.9.0"), b"first")
    srv.publish(hello(), BINARY)
    assert get(srv, bindir, "-download=false", "-goversion", GOV, "example.com/hello@v1.0.0") == 0
    # Same key, a different history: record 0 is gone, replaced by another.
    rewritten = GetServer(TransparencyLog(tmp_path / "rewritten", SKEY))
    try:
        rewritten.publish(hello("v0.9.1"), b"first, rewritten")
        rewritten.publish(hello(), BINARY)
        rewritten.publish(hello("v1.1.0"), b"newer")
        capsys.readouterr()
        code = main(["get", "-verifierkey", VKEY, "-url", rewritten.url, "-target", "linux/amd64",
                     "-goversion", GOV, "-bindir", str(bindir), "example.com/hello@v1.0.0"])
    finally:
        rewritten.close()
        rewritten.log.close()
    assert code == 3
    err = capsys.readouterr().err
    assert err.startswith("SECURITY ERROR\ngo.sum database server misbehavior detected!\n\nold database:\n\t")
    assert "proof of misbehavior:" in err and "Error:" not in err
    assert os.listdir(bindir) == []


def test_bad_signature_is_error(srv: GetServer, bindir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    srv.publish(hello(), BINARY)
    stranger = note.new_keys(NAME, bytes(32))[1]
    state_key = state() / "config" / "key"
    assert get(srv, bindir, "-download=false", "-goversion", GOV, "example.com/hello@v1.0.0", key=stranger) == 1
    err = capsys.readouterr().err
    assert "lookup" in err and err.count("\n") == 1 and "Traceback" not in err
    assert state_key.read_text().strip() == stranger  # trust on first use of the key, not of the log


# --- arguments -----------------------------------------------------------------------------------


@pytest.mark.parametrize("arg, want", [
    ("example.com/hello", ("example.com/hello", "latest", "/")),
    ("example.com/hello@v1.0.0", ("example.com/hello", "v1.0.0", "/")),
    ("example.com/hello@v1.0.0/cmd/x//", ("example.com/hello", "v1.0.0", "/cmd/x")),
    ("example.com/hello@latest/cmd", ("example.com/hello", "latest", "/cmd")),
])
def test_parse_module_arg(arg: str, want: tuple[str, str, str]) -> None:
    assert getmod.parse_module_arg(arg) == want


@pytest.mark.parametrize("args, message", [
    (["-target", "linux/amd65", "example.com/hello"], "bad -target"),
    (["-target", "linux", "example.com/hello"], "bad -target"),
    (["-goversion", "go1.5", "example.com/hello"], "bad -goversion"),
    (["nodot/hello"], "module must contain dot"),
    (["example.com/hello@"], "empty version"),
    (["example.com/../hello@v1.0.0"], "not clean"),
    (["example.com/hello@v1.0.0/../x"], "not clean"),
    (["-download=maybe", "example.com/hello"], "invalid boolean"),
    (["-nosuchflag", "example.com/hello"], "No such option"),
    ([], "Missing argument"),
])
def test_usage_errors(bindir: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    assert main(["get", "-verifierkey", VKEY, "-url", "http://127.0.0.1:1/tlog", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_goversion_is_canonicalised() -> None:
    assert getmod.parse_goversion("go1.22") == "go1.22.0"
    assert getmod.parse_goversion("latest") == "latest"


def test_normalize_go_flags() -> None:
    got = getmod.normalize_go_flags(["--quiet", "-download=false", "--url=x", "-stripped=T", "mod", "--", "-quiet"])
    assert got == ["-quiet", "-no-download", "-url=x", "-stripped", "mod", "--", "-quiet"]


def test_default_url_and_download_url() -> None:
    assert urls.default_tlog_url("beta.gobuilds.org") == "https://beta.gobuilds.org/tlog"
    assert urls.default_tlog_url("localhost") == "http://localhost:8000/tlog"
    spec = BuildSpec("github.com/mjl-/gobuild", "v0.0.8", "/", "linux", "amd64", "go1.14.1")
    want = ("https://beta.gobuilds.org/github.com/mjl-/gobuild@v0.0.8/linux-amd64-go1.14.1/"
            "0N7e6zxGtHCObqNBDA_mXKv7-A9M/gobuild-v0.0.8-go1.14.1.gz")
    assert urls.download_url("https://beta.gobuilds.org/tlog/", spec, "0N7e6zxGtHCObqNBDA_mXKv7-A9M") == want


def test_local_target(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(getmod.sys, "platform", "darwin")
    monkeypatch.setattr(getmod.platform, "machine", lambda: "arm64")
    assert getmod.local_target() == ("darwin", "arm64")
    monkeypatch.setattr(getmod.sys, "platform", "win32")
    monkeypatch.setattr(getmod.platform, "machine", lambda: "AMD64")
    assert getmod.local_target() == ("windows", "amd64")
    monkeypatch.setattr(getmod.platform, "machine", lambda: "vax")
    with pytest.raises(getmod.UsageError, match="-target"):
        getmod.local_target()


def test_gunzip_members_and_truncation() -> None:
    data = gzip.compress(b"a" * 100000) + gzip.compress(b"b" * 10)
    pieces = [data[i:i + 7] for i in range(0, len(data), 7)]
    assert b"".join(getmod.gunzip(pieces)) == b"a" * 100000 + b"b" * 10
    with pytest.raises(getmod.GetError, match="truncated"):
        b"".join(getmod.gunzip([data[:-3]]))
    with pytest.raises(getmod.GetError, match="not valid gzip"):
        b"".join(getmod.gunzip([gzip.compress(b"x") + b"junk"]))
    with pytest.raises(getmod.GetError, match="truncated"):
        b"".join(getmod.gunzip([]))


def test_progress_only_on_a_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty, pipe = Tty(), io.StringIO()
    for out in getmod.Output(False, False, tty), getmod.Output(False, False, pipe), getmod.Output(True, False, tty):
        progress = out.progress(2 << 20)
        progress(1 << 20)
        progress(2 << 20)
        progress.close()
    assert tty.getvalue() == "\rdownloading 1.0mb of 2.0mb (50%)\rdownloading 2.0mb of 2.0mb (100%)\r\033[K"
    assert pipe.getvalue() == ""


# --- genkey --------------------------------------------------------------------------------------


def test_genkey(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["genkey", "build.example.org"]) == 0
    out = capsys.readouterr()
    assert out.out == ""
    lines = out.err.splitlines()
    assert lines[0].startswith("Signer key: PRIVATE+KEY+build.example.org+")
    assert lines[1].startswith("Verifier key: build.example.org+")
    skey, vkey = lines[0].split(": ", 1)[1], lines[1].split(": ", 1)[1]
    assert str(note.Signer.parse(skey).verifier()) == vkey
    assert "gobuild get -verifierkey " + vkey in lines[2]


@pytest.mark.parametrize("name", ["a b", "a+b", "tab\there"])
def test_genkey_bad_name(capsys: pytest.CaptureFixture[str], name: str) -> None:
    assert main(["genkey", name]) == 2
    assert "invalid key name" in capsys.readouterr().err


# --- end to end: the real server in a subprocess -------------------------------------------------


def test_end_to_end_against_real_server(tmp_path: Path, server_cache: Path) -> None:
    """`gobuild get` against `python app.py` (waitress): build on lookup, verify, write ./hello that runs."""
    skey, vkey = note.generate_key("gobuild-e2e")
    (tmp_path / "signer.key").write_text(skey + "\n")
    goos, goarch = getmod.local_target()
    work = tmp_path / "work"
    work.mkdir()
    with ModuleProxy() as proxy, real_server(tmp_path, proxy.url, cache_dir=str(server_cache),
                                             signer_key_file=str(tmp_path / "signer.key")) as base:
        proxy.add("example.com/hello", "v1.0.0", hello_module("example.com/hello", "v1.0.0"))
        url = base + "/tlog"
        flags = ["-verifierkey", vkey, "-url", url, "-target", f"{goos}/{goarch}"]
        first = run_get(work, *flags, "-goversion", GOVERSION, "example.com/hello@v1.0.0")
        assert first.returncode == 0, first.stderr
        exe = work / ("hello.exe" if goos == "windows" else "hello")
        assert subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout == "hello\n"
        sum_ = sum_from_digest(hashlib.sha256(exe.read_bytes()).digest())
        spec = f"example.com/hello@v1.0.0/{goos}-{goarch}-{GOVERSION}/"
        assert f"resolved to {spec}, sum {sum_}" in first.stderr and "writing to" in first.stderr
        # Later uses check consistency with the stored head; latest resolves to the same build.
        again = run_get(work, *flags, "-download=false", "example.com/hello")
        assert again.returncode == 0 and f"resolved to {spec}, sum {sum_}" in again.stderr, again.stderr
        exact = run_get(work, *flags, "-sum", sum_, "-goversion", GOVERSION, "-bindir", str(tmp_path),
                        "-quiet", "example.com/hello@v1.0.0")
        assert exact.returncode == 0 and exact.stderr == "", exact.stderr
        assert (tmp_path / exe.name).read_bytes() == exe.read_bytes()
        # What cannot be built: the server's reason is printed, and the exit code is not 0.
        proxy.add("example.com/replaced", "v1.0.0", {**hello_module("example.com/replaced", "v1.0.0"),
                                                    "go.mod": "module example.com/replaced\n\ngo 1.22\n\n"
                                                              "replace example.com/x => ./x\n"})
        proxy.add("example.com/lib", "v1.0.0", {"go.mod": "module example.com/lib\n", "lib.go": "package lib\n"})
        for arg, extra, reason in [("example.com/replaced@v1.0.0", [], "go.mod has replace directives"),
                                   ("example.com/lib@v1.0.0", [], "package main does not exist"),
                                   ("example.com/hello@v1.0.0", ["-goversion", "go1.99.0", "-download=false"],
                                    "go1.99.0")]:
            failed = run_get(work, *flags, *extra, arg)
            assert failed.returncode == 1 and reason in failed.stderr, failed.stderr


def run_get(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `gobuild get` as a separate process (state comes from disk each time)."""
    code = "import sys; from gobuild.cli import main; sys.exit(main())"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code, "get", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def wait_for(url: str) -> None:
    """Wait until the server answers url."""
    for _ in range(200):
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    pytest.fail(f"server did not come up at {url}")
