"""Builder internals that end-to-end tests cannot reach: crash recovery between logging and publishing."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import pytest

from gobuild import gocmd
from gobuild.builds import Builder
from gobuild.compiler import BuildSettings
from gobuild.services import build_services
from gobuild.spec import BuildSpec, Record
from gobuild.store import Result, Store
from gobuild.targets import Targets
from gobuild.tlog import note
from gobuild.tlog.server import TransparencyLog
from gobuild.toolchains import Toolchains
from tests.conftest import GOROOT, GOVERSION, make_config
from tests.modproxy import ModuleProxy

SPEC = BuildSpec("example.com/hello", "v1.0.0", "/", "linux", "amd64", GOVERSION)
SUM = "0N7e6zxGtHCObqNBDA_mXKv7-A9M"


def setup(tmp_path: Path) -> tuple[Builder, Store, TransparencyLog, Result]:
    store = Store(tmp_path / "data")
    log = TransparencyLog(tmp_path / "data" / "tlog", note.generate_key("test.example")[0])
    builder = Builder(BuildSettings("off"), store, Toolchains({GOVERSION: GOROOT}, tmp_path / "sdk"),
                      tmp_path / "cache", log, targets=Targets())
    blob = store.put_blob(b"binary")
    candidate = Result(str(SPEC), SUM, 6, 6, blob, blob, blob, "2026-01-01T00:00:00Z")
    return builder, store, log, candidate


def test_a_candidate_is_logged_once_then_published(tmp_path: Path) -> None:
    builder, store, log, candidate = setup(tmp_path)
    store.put_candidate(candidate)
    assert store.result(SPEC) is None  # not served before it is logged
    result = builder.build(SPEC, io.BytesIO())
    assert result.record_number == 0 and log.size() == 1
    assert log.record(0) == Record(SPEC, 6, candidate.sum).pack()
    assert store.result(SPEC) == result and store.candidate(SPEC) is None
    assert builder.build(SPEC, io.BytesIO()) == result and log.size() == 1


def test_crash_after_append_before_publish_does_not_log_twice(tmp_path: Path) -> None:
    builder, store, log, candidate = setup(tmp_path)
    log.append(b"example.com/other v1.0.0 / linux amd64 go1.26.8 1 0N7e6zxGtHCObqNBDA_mXKv7-A9M \n")
    # What _publish leaves behind when the process dies right after appending.
    store.put_candidate(replace(candidate, appending_from=log.size()))
    log.append(Record(SPEC, 6, candidate.sum).pack())
    result = builder.build(SPEC, io.BytesIO())
    assert result.record_number == 1 and log.size() == 2
    assert result.appending_from is None


def test_reproduce_command_is_the_build_environment() -> None:
    from gobuild.compiler import reproduce_command

    old = BuildSpec("example.com/x", "v1.0.0", "/cmd/y", "windows", "arm64", "go1.25.3", True)
    assert reproduce_command(old, "http://proxy") == (
        "GO111MODULE=on GOPROXY=http://proxy CGO_ENABLED=0 GOOS=windows GOARCH=arm64 GOTOOLCHAIN=go1.25.3 "
        "GO19CONCURRENTCOMPILATION=0 go install -trimpath -ldflags='-buildid= -s' -- example.com/x/cmd/y@v1.0.0")
    assert "GO19CONCURRENTCOMPILATION" not in reproduce_command(SPEC, "http://proxy")


def test_a_published_build_counts_for_its_target(tmp_path: Path) -> None:
    """Targets ordered by how often they were built learn from each new build (REFERENCE 3.4)."""
    builder, store, _, candidate = setup(tmp_path)
    targets = builder.targets
    assert targets is not None
    arm = replace(SPEC, goarch="arm64")
    store.put_candidate(replace(candidate, spec=str(arm)))
    order = targets.by_popularity()
    assert order.index(("linux", "arm64")) > order.index(("windows", "amd64"))
    builder.build(arm, io.BytesIO())
    builder.build(arm, io.BytesIO())  # already built: not counted again
    order = targets.by_popularity()
    # Seeded 1, counted once: ahead of windows/amd64 (2, alphabetical tie), behind darwin/arm64 (2).
    assert order.index(("darwin", "arm64")) < order.index(("linux", "arm64")) < order.index(("windows", "amd64"))


def test_target_popularity_starts_from_the_log(tmp_path: Path, modproxy: ModuleProxy) -> None:
    """After a restart the order still knows what was built: the log's newest records are counted."""
    cfg = make_config(tmp_path / "data", modproxy)
    log = build_services(cfg).tlog
    for version in ("v1.0.0", "v1.0.1", "v1.0.2", "v1.0.3"):  # one more than linux/amd64's seed
        log.append(Record(replace(SPEC, version=version, goos="plan9", goarch="386"), 6, SUM).pack())
    assert build_services(cfg).targets.by_popularity()[0] == ("plan9", "386")


def test_go_commands_find_uname_and_nothing_of_the_server_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from gobuild import gocmd

    monkeypatch.setenv("PATH", str(tmp_path))  # the server's PATH must not leak in
    env = gocmd.environment(gocmd.GoPaths(tmp_path, tmp_path), tmp_path, "go1.20.14", "off")
    assert shutil.which("uname", path=env["PATH"]) is not None  # go1.20's cmd/dist runs `uname -m`
    assert str(tmp_path) not in env["PATH"].split(":")


def test_go_older_than_1_16_is_refused_with_the_reason(tmp_path: Path) -> None:
    from gobuild.failures import UserError

    builder, _, _, _ = setup(tmp_path)
    with pytest.raises(UserError, match=r"go install pkg@version. needs go1.16"):
        builder.build(SPEC.with_(goversion="go1.15.15"), io.BytesIO())


def test_cause_is_gos_last_words_not_its_trace() -> None:
    from gobuild.failures import UNCLASSIFIED, cause, classify, failure_message

    output = "\n".join([
        "WORK=/tmp/go-build1", "example.com/x", "mkdir -p $WORK/b001/",
        "cat >/tmp/go-build1/b001/importcfg << 'EOF' # internal", "# import config",
        "packagefile fmt=/tmp/go-build1/b002/_pkg_.a", "EOF",
        "/usr/local/go/pkg/tool/linux_amd64/compile -o $WORK/b001/_pkg_.a -p main ./main.go",
        "go tool buildid -w $WORK/b001/_pkg_.a # internal", "# example.com/x",
        "example.com/x@v1.0.0/main.go:4:4: syntax error: unexpected newline, expected expression", ""])
    assert classify(output) == UNCLASSIFIED
    assert cause(output) == ("# example.com/x | "
                             "example.com/x@v1.0.0/main.go:4:4: syntax error: unexpected newline, expected expression")
    assert failure_message(UNCLASSIFIED, output, "exit status 1").startswith("build failed: # example.com/x | ")
    assert failure_message("cgo", "", "exit status 1") == "build failed (cgo): exit status 1"
    assert cause("only/trace\n$WORK/x\n") == "only/trace | $WORK/x"  # nothing else: the last lines anyway


def test_a_broken_build_cache_entry_is_built_again_without_the_cache(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """go's 'could not import fmt (open : no such file or directory)' is the cache's fault, not the
    module's: the compile runs once more with -a; any other failure is not retried."""
    builder, _, _, _ = setup(tmp_path)
    toolchain = builder.toolchains.get(GOVERSION)
    calls: list[list[str]] = []
    broken = "# example.com/m\nmain.go:3:8: could not import fmt (open : no such file or directory)\n"

    def run(goroot: Path, args: list[str], home: Path, timeout: float, **kw: object) -> str:
        calls.append(list(args))
        if len(calls) == 1:
            raise gocmd.GoCommandError(["go", *args], 1, broken)
        return ""

    monkeypatch.setattr(builder.compiler.go, "run", run)
    out = io.BytesIO()
    builder.compiler._install(toolchain, tmp_path, ["-v", "--", "example.com/m@v1.0.0"], ("linux", "amd64"), out)
    pkg = ["--", "example.com/m@v1.0.0"]
    assert calls == [["install", "-v", *pkg], ["install", "-a", "-v", *pkg]]
    assert b"building everything again (-a)" in out.getvalue()

    calls.clear()
    broken = "main.go:3:8: undefined: x\n"
    with pytest.raises(gocmd.GoCommandError):
        builder.compiler._install(toolchain, tmp_path, ["--", "example.com/m@v1.0.0"], ("linux", "amd64"), out)
    assert len(calls) == 1


def test_a_download_error_keeps_go_s_status_line_with_its_indented_reason() -> None:
    # go prints the proxy's status on one line and the proxy's reason indented below it: both, on one line.
    from gobuild import compiler

    output = ("go: example.com/hello@v9.9.9: reading http://127.0.0.1:1/example.com/hello/@v/v9.9.9.info: "
              "403 Forbidden\n\tserver response: This module version is not available.\n")
    message = str(compiler._download_error("example.com/hello", "v9.9.9", output))
    assert "403 Forbidden" in message and "server response: This module version is not available." in message
    assert "\t" not in message and "\n" not in message
    flood = "go: inconsistent vendoring\n" + "\texample.com/m@v1.0.0: is explicitly required\n" * 300
    assert len(str(compiler._download_error("example.com/hello", "v1.0.0", flood))) < 1100  # not 12 KB
