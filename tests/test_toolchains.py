"""Tests for gobuild.toolchains: install from the module proxy, verification, versions, targets.

Hermetic: fake golang.org/toolchain versions (a shell-script bin/go) on the test module proxy,
and a checksum database signed by a test key served at the proxy's /sumdb/<name>/. The test
marked `network` installs a real toolchain through the configured proxy and checksum database:

    python -m pytest -m network tests/test_toolchains.py
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import subprocess
import threading
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gobuild import config as configmod
from gobuild import toolchains as tcmod
from gobuild import toolchainzip
from gobuild.goproxy import GoProxyClient
from gobuild.services import build_services, check
from gobuild.sumdb import ChecksumMismatch, SumDB, configured_gosumdb, parse_gosumdb
from gobuild.targets import Targets, parse_dist_list
from gobuild.toolchains import (
    TOOLCHAIN_MODULE,
    ToolchainRejected,
    Toolchains,
    ToolchainUnavailable,
    UnknownGoVersion,
    UnsupportedTarget,
    VersionList,
    VersionPolicy,
)
from gobuild.toolchains import install as tcinstall
from tests.conftest import GOROOT, GOVERSION
from tests.modproxy import ModuleProxy, hello_module, make_zip
from tests.toolchainfake import (
    DIST_LIST,
    PLATFORM,
    FakeSumDB,
    add_toolchain,
    fake_go_script,
    fake_toolchain_files,
    module_version,
    real_toolchain_zip,
    zip_path,
)

GO = "go1.99.1"
REAL_PATH = os.environ.get("PATH", os.defpath)  # before the fixture below hides the local Go


@pytest.fixture(autouse=True)
def no_local_go(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No Go on PATH: toolchains come from the proxy only, unless a test configures one."""
    (tmp_path / "empty-path").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))


@pytest.fixture
def db(tmp_path: Path) -> FakeSumDB:
    return FakeSumDB(tmp_path / "sumdb-log")


@pytest.fixture
def published(modproxy: ModuleProxy, db: FakeSumDB) -> ModuleProxy:
    """The proxy offering go1.99.1 (and a few other versions), with the checksum database."""
    for v in (GO, "go1.99.0", "go1.98.6", "go1.98.5", "go1.97.9", "go1.100rc1"):
        add_toolchain(modproxy, db, v)
    add_toolchain(modproxy, db, "go1.101.0", platform=("windows", "arm64"))  # another platform
    db.publish(modproxy)
    return modproxy


def make(tmp_path: Path, proxy: ModuleProxy | None, db: FakeSumDB | None, **kw: Any) -> Toolchains:
    """Toolchains for a test data dir: downloads from proxy verified by db (None: GOSUMDB=off)."""
    client = GoProxyClient(proxy.url, timeout=5.0) if proxy else None
    checker = db.client(proxy, tmp_path / "data" / "sumdb") if db and proxy else None
    configured = kw.pop("configured", {})
    return Toolchains(configured, tmp_path / "data" / "sdk", client, checker, platform=PLATFORM, **kw)


def zip_requests(proxy: ModuleProxy, goversion: str = GO) -> int:
    return proxy.requests.count(zip_path(goversion))


def sdk_entries(tmp_path: Path) -> list[str]:
    """What is in data/sdk besides lock files and the go commands' home (staging dirs show up)."""
    sdk = tmp_path / "data" / "sdk"
    if not sdk.exists():
        return []
    return sorted(p.name for p in sdk.iterdir() if not p.name.endswith(".lock") and p.name != ".gohome")


# --- install on first use ---------------------------------------------------------------------


def test_install_on_first_use(tmp_path: Path, published: ModuleProxy, db: FakeSumDB) -> None:
    tc = make(tmp_path, published, db)
    assert tc.installed() == []
    sdk = tc.get(GO)
    goroot = tmp_path / "data" / "sdk" / GO
    assert sdk == tcmod.Toolchain(GO, goroot)
    assert subprocess.run([str(sdk.go), "version"], capture_output=True, text=True).stdout.split()[2] == GO
    mode = lambda rel: (goroot / rel).stat().st_mode & 0o777  # noqa: E731
    assert mode("bin/go") == mode("bin/gofmt") == mode("pkg/tool/linux_amd64/compile") == 0o755
    assert mode("lib/wasm/go_js_wasm_exec") == 0o755
    assert mode("src/fmt/print.go") == mode("lib/time/zoneinfo.zip") == 0o644
    assert (goroot / "src/go.mod").read_text() == "module std\n"  # _go.mod copied like go does
    assert (goroot / "src/cmd/go.mod").read_text() == "module cmd\n"
    assert any(r.startswith(f"/sumdb/{db.name}/lookup/") for r in published.requests)
    assert tc.installed() == [GO]
    assert sdk_entries(tmp_path) == [GO]  # no staging dirs left


def test_second_request_and_restart_do_not_download(tmp_path: Path, published: ModuleProxy, db: FakeSumDB) -> None:
    make(tmp_path, published, db).get(GO)
    tc = make(tmp_path, published, db)
    assert tc.installed() == [GO]  # found on disk at start
    tc.get(GO)
    tc.get(GO)
    assert zip_requests(published) == 1


def test_concurrent_first_requests_download_once(tmp_path: Path, published: ModuleProxy, db: FakeSumDB) -> None:
    tc = make(tmp_path, published, db)
    other_process = make(tmp_path, published, db)  # own locks and state, same data dir
    results: list[object] = []
    barrier = threading.Barrier(12)

    def fetch(t: Toolchains) -> None:
        barrier.wait()
        results.append(t.get(GO))

    threads = [threading.Thread(target=fetch, args=(other_process if i % 6 == 0 else tc,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 12 and len(set(results)) == 1
    assert zip_requests(published) == 1


def test_canonical_spelling(tmp_path: Path, modproxy: ModuleProxy, db: FakeSumDB) -> None:
    add_toolchain(modproxy, db, "go1.99.0")
    db.publish(modproxy)
    assert make(tmp_path, modproxy, db).get("go1.99").goversion == "go1.99.0"


# --- refusals: nothing installed, nothing remembered ----------------------------------------


def test_wrong_hash_in_database_refused(tmp_path: Path, modproxy: ModuleProxy, db: FakeSumDB) -> None:
    add_toolchain(modproxy, None, GO)
    db.add(TOOLCHAIN_MODULE, module_version(GO), "h1:" + "A" * 43 + "=")
    db.publish(modproxy)
    tc = make(tmp_path, modproxy, db)
    with pytest.raises(ChecksumMismatch) as e:
        tc.get(GO)
    assert e.value.status == 502
    assert sdk_entries(tmp_path) == [] and tc.installed() == []


def test_corrupted_zip_refused(tmp_path: Path, published: ModuleProxy, db: FakeSumDB) -> None:
    evil = fake_toolchain_files(GO)
    evil["bin/go"] = str(evil["bin/go"]).replace("exit 2", "exit 0 # backdoor")
    data = {k: v.encode() if isinstance(v, str) else v for k, v in evil.items()}
    published.serve(zip_path(GO), make_zip(TOOLCHAIN_MODULE, module_version(GO), data))
    tc = make(tmp_path, published, db)
    with pytest.raises(ChecksumMismatch):
        tc.get(GO)
    assert sdk_entries(tmp_path) == []


def test_truncated_zip_is_temporary(tmp_path: Path, published: ModuleProxy, db: FakeSumDB) -> None:
    published.serve(zip_path(GO), b"PK\x03\x04 truncated")
    with pytest.raises(ToolchainUnavailable):
        make(tmp_path, published, db).get(GO)
    assert sdk_entries(tmp_path) == []


def test_failure_not_memoised(tmp_path: Path, published: ModuleProxy, db: FakeSumDB) -> None:
    tc = make(tmp_path, published, db)
    published.fail(zip_path(GO), 503)
    with pytest.raises(ToolchainUnavailable) as e:
        tc.get(GO)
    assert e.value.status == 503
    published.fail(zip_path(GO), 0)
    assert tc.get(GO).goversion == GO


def test_waiters_share_the_leaders_failure(tmp_path: Path, published: ModuleProxy, db: FakeSumDB) -> None:
    tc = make(tmp_path, published, db)
    published.fail(zip_path(GO), 503)
    errors: list[BaseException] = []
    barrier = threading.Barrier(5)

    def fetch() -> None:
        barrier.wait()
        try:
            tc.get(GO)
        except ToolchainUnavailable as e:
            errors.append(e)

    threads = [threading.Thread(target=fetch) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 5
    assert zip_requests(published) < 5  # joined the running attempt rather than each retrying


def test_unknown_version(tmp_path: Path, published: ModuleProxy, db: FakeSumDB) -> None:
    tc = make(tmp_path, published, db)
    with pytest.raises(UnknownGoVersion, match="not available") as e:
        tc.get("go1.98.7")
    assert e.value.status == 422
    with pytest.raises(UnknownGoVersion):
        tc.get("go1.nope")
    with pytest.raises(UnknownGoVersion):
        tc.resolve("go1.98.7")  # the list is known, so refused before any download


def test_smoke_test_failure_refused(tmp_path: Path, modproxy: ModuleProxy, db: FakeSumDB) -> None:
    add_toolchain(modproxy, db, GO, files=fake_toolchain_files(GO, says="go1.99.2"))
    db.publish(modproxy)
    with pytest.raises(ToolchainRejected, match=r"says go1\.99\.2"):
        make(tmp_path, modproxy, db).get(GO)
    assert sdk_entries(tmp_path) == []


def test_gosumdb_off_installs_and_says_so(tmp_path: Path, modproxy: ModuleProxy,
                                          caplog: pytest.LogCaptureFixture) -> None:
    add_toolchain(modproxy, None, GO)
    caplog.set_level(logging.INFO, "gobuild.toolchains")
    make(tmp_path, modproxy, None).get(GO)
    assert any("GOSUMDB=off" in r.getMessage() and GO in r.getMessage() for r in caplog.records)
    assert not any(r.startswith("/sumdb/") for r in modproxy.requests)


def test_progress_lines_for_slow_downloads(tmp_path: Path, published: ModuleProxy, db: FakeSumDB,
                                           caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tcinstall, "PROGRESS_INTERVAL", 0.01)
    tc = make(tmp_path, published, db)
    original = tc.proxy.zip  # type: ignore[union-attr]

    def slow_zip(*args: Any) -> None:
        threading.Event().wait(0.1)
        original(*args)

    monkeypatch.setattr(tc.proxy, "zip", slow_zip)
    caplog.set_level(logging.INFO, "gobuild.toolchains")
    tc.get(GO)
    messages = [r.getMessage() for r in caplog.records]
    assert any("MB so far" in m for m in messages)
    assert any(m.startswith(f"downloaded Go toolchain {GO}") for m in messages)


# --- unsafe zips ------------------------------------------------------------------------------

PREFIX = f"{TOOLCHAIN_MODULE}@{module_version(GO)}/"


def _zip(entries: list[tuple[str, bytes] | zipfile.ZipInfo]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate we mean to write
        z.writestr(PREFIX + "bin/go", b"#!/bin/sh\n")
        for e in entries:
            if isinstance(e, zipfile.ZipInfo):
                z.writestr(e, b"/etc/passwd")
            else:
                z.writestr(e[0], e[1])
    return buf.getvalue()


def _symlink(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = 0o120777 << 16
    return info


UNSAFE = {
    "dotdot": [(PREFIX + "../escape", b"x")],
    "dotdot-inside": [(PREFIX + "src/../../escape", b"x")],
    "absolute": [("/etc/cron.d/evil", b"x")],
    "outside-prefix": [("golang.org/toolchain@v0.0.1-go1.0.0.linux-amd64/bin/go", b"x")],
    "double-slash": [(PREFIX + "/etc/evil", b"x")],
    "backslash": [(PREFIX + "bin\\..\\..\\evil", b"x")],
    "symlink": [_symlink(PREFIX + "bin/link")],
    "case-collision": [(PREFIX + "BIN/go", b"x")],
    "duplicate": [(PREFIX + "bin/go", b"again")],
    "nested-go-mod": [(PREFIX + "src/go.mod", b"module std\n")],
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_unsafe_zip_entries_refused(tmp_path: Path, case: str) -> None:
    path = tmp_path / "t.zip"
    path.write_bytes(_zip(UNSAFE[case]))  # type: ignore[arg-type]
    with pytest.raises(toolchainzip.UnsafeZip):
        toolchainzip.unpack(path, PREFIX, tmp_path / "goroot")
    assert not (tmp_path / "goroot").exists()
    assert not (tmp_path / "escape").exists() and not (tmp_path.parent / "escape").exists()


def test_unsafe_zip_refused_end_to_end(tmp_path: Path, modproxy: ModuleProxy, db: FakeSumDB) -> None:
    add_toolchain(modproxy, None, GO)
    bad = _zip([(PREFIX + "../../../escape", b"x")])
    modproxy.serve(zip_path(GO), bad)
    db.add_zip(TOOLCHAIN_MODULE, module_version(GO), bad)  # even a "verified" zip is checked
    db.publish(modproxy)
    with pytest.raises(ToolchainRejected, match="refusing its zip"):
        make(tmp_path, modproxy, db).get(GO)
    assert sdk_entries(tmp_path) == []


def test_safe_zip_with_directory_entries(tmp_path: Path) -> None:
    path = tmp_path / "t.zip"
    path.write_bytes(_zip([(PREFIX + "misc/", b""), (PREFIX + "misc/a.txt", b"a"), (PREFIX, b"")]))
    toolchainzip.unpack(path, PREFIX, tmp_path / "goroot")
    assert (tmp_path / "goroot/misc/a.txt").read_bytes() == b"a"


# --- which versions: supported, latest, oldest/stop, go1.N.latest ----------------------------


def test_goversions_from_list() -> None:
    listed = ["v0.0.1-go1.22.0.linux-amd64", "v0.0.1-go1.22.0.windows-amd64", "v0.0.1-go1.21rc2.linux-amd64",
              "v0.0.1-go1.22.1.linux-amd64", "v0.0.1-go1.22.0.linux-amd64p32", "v0.0.1-junk.linux-amd64",
              "v0.0.1-go1.21.linux-amd64"]  # non-canonical: skipped
    assert tcmod.goversions_from_list(listed, "linux", "amd64") == ["go1.22.1", "go1.22.0", "go1.21rc2"]


def test_sort_goversions() -> None:
    got = tcmod.sort_goversions(["go1.21rc1", "go1.21.0", "go1.20.7", "go1.21rc2", "go1.21beta1", "go1.22rc1"])
    assert got == ["go1.22rc1", "go1.21.0", "go1.21rc2", "go1.21rc1", "go1.21beta1", "go1.20.7"]


@pytest.mark.parametrize("versions,want", [
    (["go1.22.3", "go1.22.2", "go1.21.9", "go1.21.10", "go1.20.14", "go1.23rc1"], ["go1.22.3", "go1.21.10"]),
    (["go1.23.0", "go1.22.5", "go1.21.12"], ["go1.23.0", "go1.22.5"]),
    (["go1.22.0"], ["go1.22.0"]),
    (["go1.23rc1"], []),
    ([], []),
])
def test_supported_versions(versions: list[str], want: list[str]) -> None:
    assert tcmod.supported_versions(versions) == want


def test_supported_and_latest_from_proxy(tmp_path: Path, published: ModuleProxy, db: FakeSumDB) -> None:
    tc = make(tmp_path, published, db)
    assert tc.listed() == ["go1.100rc1", GO, "go1.99.0", "go1.98.6", "go1.98.5", "go1.97.9"]
    assert tc.supported() == [GO, "go1.98.6"]
    assert tc.latest() == GO  # not the rc
    assert tc.installed() == []  # resolving "latest" downloads nothing


def test_local_toolchain_joins_the_list(tmp_path: Path, published: ModuleProxy, db: FakeSumDB) -> None:
    tc = make(tmp_path, published, db, configured={GOVERSION: GOROOT})
    assert GOVERSION in tc.available() and tc.latest() == GO
    assert tc.get(GOVERSION).goroot == Path(GOROOT)
    assert zip_requests(published, GOVERSION) == 0


def test_oldest_and_stop(tmp_path: Path, published: ModuleProxy, db: FakeSumDB) -> None:
    tc = make(tmp_path, published, db, stop="go1.99", oldest="go1.98")
    assert tc.latest() == "go1.98.6"
    assert tc.resolve("latest") == "go1.98.6"
    with pytest.raises(UnknownGoVersion, match=r"go1\.99 and newer"):
        tc.get(GO)
    with pytest.raises(UnknownGoVersion, match=r"older than go1\.98"):
        tc.resolve("go1.97.9")
    with pytest.raises(UnknownGoVersion):
        tc.resolve("go1.99.latest")
    assert zip_requests(published) == 0


def test_stop_below_everything(tmp_path: Path, published: ModuleProxy, db: FakeSumDB) -> None:
    with pytest.raises(UnknownGoVersion, match="no Go toolchain"):
        make(tmp_path, published, db, stop="go1.90").latest()


def test_version_policy() -> None:
    p = VersionPolicy(oldest="go1.21", stop="go1.23")
    assert [p.allows(v) for v in ("go1.20.14", "go1.21rc1", "go1.21.0", "go1.22.9", "go1.23rc1", "go1.23.0")] == \
        [False, True, True, True, False, False]


def test_minor_latest(tmp_path: Path, published: ModuleProxy, db: FakeSumDB) -> None:
    tc = make(tmp_path, published, db)
    assert tc.resolve("go1.98.latest") == "go1.98.6"
    assert tc.resolve("go1.99.latest") == GO
    with pytest.raises(UnknownGoVersion):
        tc.resolve("go1.100.latest")  # only an rc
    with pytest.raises(UnknownGoVersion):
        tc.resolve("go1.50.latest")


def test_local_only_without_proxy(tmp_path: Path) -> None:
    tc = make(tmp_path, None, None, configured={GOVERSION: GOROOT})
    assert tc.installed() == [GOVERSION] and tc.latest() == GOVERSION and tc.listed() is None
    with pytest.raises(UnknownGoVersion, match="not available"):
        tc.get(GO)


def test_proxy_without_toolchains_offers_none(tmp_path: Path, modproxy: ModuleProxy) -> None:
    tc = make(tmp_path, modproxy, None, configured={GOVERSION: GOROOT})
    assert tc.listed() == [] and tc.latest() == GOVERSION


def test_outage_keeps_the_old_list(tmp_path: Path, published: ModuleProxy, db: FakeSumDB) -> None:
    clock = FakeClock()
    tc = make(tmp_path, published, db, clock=clock)
    before = tc.listed()
    assert before and tc.latest() == GO
    published.fail(f"/{TOOLCHAIN_MODULE}/@v/list", 503)
    clock.now += tcmod.REFRESH_INTERVAL
    assert tc.listed() == before  # the refresh runs in the background; the old list answers
    tc._listed.join()  # type: ignore[union-attr]
    list_path = f"/{TOOLCHAIN_MODULE}/@v/list"
    assert published.requests.count(list_path) == 2  # it was tried, and failed
    assert tc.listed() == before and tc.latest() == GO
    assert published.requests.count(list_path) == 2  # not again within the back-off


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _counting(answers: list[Callable[[], list[str]]]) -> tuple[Callable[[], list[str]], list[int]]:
    calls = [0]

    def fetch() -> list[str]:
        calls[0] += 1
        return answers[min(calls[0], len(answers)) - 1]()

    return fetch, calls


def _fail() -> list[str]:
    raise ToolchainUnavailable("proxy down")


def test_version_list_refresh_and_back_off() -> None:
    clock = FakeClock()
    fetch, calls = _counting([lambda: ["go1.2.3"], _fail, _fail, lambda: ["go1.2.4"]])
    vl = VersionList(fetch, interval=3600, backoff=60, clock=clock)
    assert vl.get() == ["go1.2.3"] and calls[0] == 1  # first use waits for the list
    clock.now += 3599
    assert vl.get() == ["go1.2.3"] and calls[0] == 1  # fresh: no request
    clock.now += 1
    vl.get()
    vl.join()
    assert calls[0] == 2 and vl.get() == ["go1.2.3"]  # failed: old list kept
    clock.now += 59
    vl.get()
    vl.join()
    assert calls[0] == 2  # within the back-off: no new attempt
    clock.now += 1
    vl.get()
    vl.join()
    assert calls[0] == 3  # retried after the back-off, not an hour later
    clock.now += 60
    vl.get()
    vl.join()
    assert calls[0] == 4 and vl.get() == ["go1.2.4"]


def test_version_list_first_failure_then_retry() -> None:
    clock = FakeClock()
    fetch, calls = _counting([_fail, lambda: ["go1.2.3"]])
    vl = VersionList(fetch, interval=3600, backoff=60, clock=clock)
    assert vl.get() is None and calls[0] == 1
    clock.now += 60
    vl.get()
    vl.join()
    assert vl.get() == ["go1.2.3"]


def test_version_list_concurrent_first_use_fetches_once() -> None:
    fetch, calls = _counting([lambda: (threading.Event().wait(0.05), ["go1.2.3"])[1]])
    vl = VersionList(fetch)
    threads = [threading.Thread(target=vl.get) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls[0] == 1


# --- targets per version ----------------------------------------------------------------------


def test_targets_from_the_toolchain(tmp_path: Path, published: ModuleProxy, db: FakeSumDB,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    targets = Targets()
    tc = make(tmp_path, published, db, targets=targets)
    want = [("darwin", "arm64"), ("linux", "amd64"), ("windows", "amd64"), ("aix", "ppc64"),
            ("linux", "riscv64"), ("wasip1", "wasm"), ("freebsd", "riscv64")]
    assert tc.broken_targets(GO) == frozenset()  # not listed yet: asking never installs
    assert tc.targets_for(GO) == want  # first-class ports first, broken ones last; installs the toolchain
    assert tc.broken_targets(GO) == {("freebsd", "riscv64")}
    assert ("wasip1", "wasm") in targets  # a port the static list lacks is accepted in URLs now
    def no_second_run(sdk: object, home: object) -> list[tuple[str, str]]:
        raise AssertionError("go tool dist list ran again")

    monkeypatch.setattr(tcmod, "_dist_list", no_second_run)
    assert tc.targets_for(GO) == want  # cached per version
    tc.check_target(GO, "linux", "riscv64")
    tc.check_target(GO, "freebsd", "riscv64")  # broken, but go install builds it
    with pytest.raises(UnsupportedTarget, match="does not support target plan9/arm") as e:
        tc.check_target(GO, "plan9", "arm")
    assert e.value.status == 422


def test_targets_of_an_old_toolchain(tmp_path: Path, modproxy: ModuleProxy, db: FakeSumDB) -> None:
    # go1.20's `go tool dist list` runs `uname -m` (PATH is empty in these tests) and knows no -broken.
    add_toolchain(modproxy, db, "go1.20.14")
    db.publish(modproxy)
    tc = make(tmp_path, modproxy, db)
    assert tc.targets_for("go1.20.14") == [("darwin", "arm64"), ("linux", "amd64"), ("windows", "amd64"),
                                           ("aix", "ppc64"), ("linux", "riscv64"), ("wasip1", "wasm")]
    assert tc.broken_targets("go1.20.14") == frozenset()


def test_targets_of_the_local_go(tmp_path: Path) -> None:
    tc = make(tmp_path, None, None, configured={GOVERSION: GOROOT})
    got = tc.targets_for(GOVERSION)
    assert got[:2] == [("darwin", "amd64"), ("darwin", "arm64")] and ("linux", "amd64") in got
    assert ("darwin", "386") not in got  # in the original's static list, gone from Go long ago
    assert ("freebsd", "riscv64") in got and ("freebsd", "riscv64") in tc.broken_targets(GOVERSION)
    with pytest.raises(UnsupportedTarget):
        tc.check_target("latest", "darwin", "386")


def test_parse_dist_list() -> None:
    import json
    broken = [*DIST_LIST, {"GOOS": "openbsd", "GOARCH": "mips64", "Broken": True}]
    targets, marked = parse_dist_list(json.dumps(broken))
    assert targets[-1] == ("openbsd", "mips64") and marked == {("openbsd", "mips64")}
    for bad in ("{}", "[1]", '[{"GOOS": "Linux", "GOARCH": "amd64"}]', '[{"GOOS": "../x", "GOARCH": "y"}]', "nope"):
        with pytest.raises(ValueError):
            parse_dist_list(bad)


# --- a real toolchain, made from the local Go ------------------------------------------------


def test_real_toolchain_from_proxy_builds_the_same_bytes(tmp_path: Path, modproxy: ModuleProxy, db: FakeSumDB,
                                                        shared_build_cache: Path) -> None:
    """The local GOROOT packed as the toolchain module: installed from the proxy, it builds identical bytes."""
    platform = tcmod.host_platform()
    version = tcmod.toolchain_module_version(GOVERSION, *platform)
    zip_bytes = real_toolchain_zip(Path(GOROOT), GOVERSION, platform)
    modproxy.add(TOOLCHAIN_MODULE, version, {"go.mod": "module golang.org/toolchain\n"})  # for @v/list
    modproxy.serve(zip_path(GOVERSION, platform), zip_bytes)
    db.add_zip(TOOLCHAIN_MODULE, version, zip_bytes)
    db.publish(modproxy)
    modproxy.add("example.com/tchello", "v1.0.0", hello_module("example.com/tchello", "v1.0.0", "from the proxy"))
    tc = Toolchains({}, tmp_path / "data" / "sdk", GoProxyClient(modproxy.url, timeout=5.0),
                    db.client(modproxy, tmp_path / "data" / "sumdb"), platform=platform)
    assert tc.latest() == GOVERSION and tc.installed() == []
    sdk = tc.get(GOVERSION)
    assert sdk.goroot == tmp_path / "data" / "sdk" / GOVERSION
    # The build cache the service tests share keeps this quick; both builds use it alike.
    cache = shared_build_cache / GOVERSION
    sums = [_install_sum(go, tmp_path / name, modproxy, cache)
            for name, go in (("downloaded", sdk.go), ("local", Path(GOROOT) / "bin" / "go"))]
    assert sums[0] == sums[1]


def _install_sum(go: Path, home: Path, proxy: ModuleProxy, cache: Path) -> str:
    """go install the test command as gobuild does; the sha256 of the binary."""
    env = {"HOME": str(home), "GOPATH": str(home / "go"), "GOCACHE": str(cache), "GOPROXY": proxy.url,
           "GOSUMDB": "off", "GOTOOLCHAIN": GOVERSION, "CGO_ENABLED": "0", "GOFLAGS": "", "GOTELEMETRY": "off"}
    home.mkdir()
    subprocess.run([str(go), "install", "-trimpath", "-ldflags=-buildid=", "example.com/tchello@v1.0.0"],
                   env=env, cwd=home, check=True, capture_output=True)
    return hashlib.sha256((home / "go" / "bin" / "tchello").read_bytes()).hexdigest()


# --- configuration ----------------------------------------------------------------------------


def test_services_toolchains(tmp_path: Path, published: ModuleProxy, db: FakeSumDB) -> None:
    cfg = configmod.Config(data_dir=str(tmp_path / "data"), goproxy=published.url, toolchains={GOVERSION: GOROOT},
                           environment=(f"GOSUMDB={db.vkey}",), proxy_timeout=5.0, goversion_stop="go1.99")
    tc = build_services(cfg.with_overrides()).toolchains
    assert tc.sumdb is not None and tc.sumdb.name == db.name
    assert tc.latest() == "go1.98.6"
    if tc.platform == PLATFORM:
        assert tc.get("go1.98.6").goversion == "go1.98.6"


def test_services_toolchains_gosumdb_off(tmp_path: Path, modproxy: ModuleProxy) -> None:
    cfg = configmod.Config(data_dir=str(tmp_path / "data"), goproxy=modproxy.url, toolchains={GOVERSION: GOROOT},
                           environment=("GOSUMDB=off",))
    assert build_services(cfg.with_overrides()).toolchains.sumdb is None


def test_services_toolchains_goproxy_off_is_local_only(tmp_path: Path) -> None:
    cfg = configmod.Config(data_dir=str(tmp_path / "data"), goproxy="off", toolchains={GOVERSION: GOROOT})
    tc = build_services(cfg.with_overrides()).toolchains
    assert tc.proxy is None and tc.latest() == GOVERSION


def test_services_run_go_version_of_a_configured_toolchain_once(tmp_path: Path) -> None:
    goroot = tmp_path / "go"
    (goroot / "bin").mkdir(parents=True)
    calls = tmp_path / "calls"
    script = fake_go_script("go1.98.6").replace("#!/bin/sh\n", f'#!/bin/sh\necho "$*" >> {calls}\n', 1)
    (goroot / "bin" / "go").write_text(script)
    (goroot / "bin" / "go").chmod(0o755)
    cfg = configmod.Config(data_dir=str(tmp_path / "data"), goproxy="off", toolchains={"go1.98.6": str(goroot)})
    assert build_services(cfg.with_overrides()).toolchains.latest() == "go1.98.6"
    assert calls.read_text().splitlines().count("version") == 1


def test_services_toolchains_bad_gosumdb(tmp_path: Path, modproxy: ModuleProxy) -> None:
    cfg = configmod.Config(data_dir=str(tmp_path / "data"), goproxy=modproxy.url, toolchains={GOVERSION: GOROOT},
                           environment=("GOSUMDB=db.example+nokey",))
    with pytest.raises(configmod.ConfigError, match="GOSUMDB"):
        check(cfg.with_overrides())
    assert not (tmp_path / "data").exists()  # found before anything is created


# --- the real thing (network) -----------------------------------------------------------------


@pytest.mark.network
def test_real_toolchain_from_configured_proxy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Install the newest Go from the real proxy, verified by the real checksum database; build with it."""
    monkeypatch.setenv("PATH", REAL_PATH)  # GOPROXY and GOSUMDB come from the Go there, if any
    goproxy = configmod.default_goproxy()
    setting = parse_gosumdb(configured_gosumdb(()))
    assert setting is not None, "GOSUMDB=off: nothing to verify against"
    data = tmp_path / "data"
    monkeypatch.setenv("PATH", str(tmp_path))  # no local Go: everything comes from the proxy
    tc = Toolchains({}, data / "sdk", GoProxyClient(goproxy, timeout=60.0),
                    SumDB(setting, goproxy, data / "sumdb", timeout=60.0))
    goversion = tc.latest()
    sdk = tc.get(goversion)
    assert tcmod.read_goversion(sdk.goroot) == goversion
    assert tc.platform in tc.targets_for(goversion)
    src = tmp_path / "hello"
    src.mkdir()
    (src / "go.mod").write_text("module example.com/hello\n\ngo 1.21\n")
    (src / "main.go").write_text('package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hello") }\n')
    env = {"HOME": str(tmp_path), "GOTOOLCHAIN": "local", "GOPROXY": "off", "CGO_ENABLED": "0",
           "GOCACHE": str(tmp_path / "cache"), "GOPATH": str(tmp_path / "gopath"), "PATH": os.defpath}
    subprocess.run([str(sdk.go), "build", "-trimpath", "-o", str(tmp_path / "hello.bin"), "."], cwd=src,
                   env=env, check=True)
    out = subprocess.run([str(tmp_path / "hello.bin")], capture_output=True, text=True, check=True)
    assert out.stdout == "hello\n"


def test_server_without_local_go_builds_with_a_toolchain_from_the_proxy(
        tmp_path: Path, modproxy: ModuleProxy, db: FakeSumDB, server_cache: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 3's done-when: no Go configured or on PATH; the server fetches one and builds the same bytes."""
    from gobuild.spec import BuildSpec
    from gobuild.targets import DEFAULT_TARGETS
    from gobuild.web import create_app
    from tests.conftest import make_config
    from tests.gohelp import direct_sum

    platform = tcmod.host_platform()
    version = tcmod.toolchain_module_version(GOVERSION, *platform)
    zip_bytes = real_toolchain_zip(Path(GOROOT), GOVERSION, platform)
    modproxy.add(TOOLCHAIN_MODULE, version, {"go.mod": "module golang.org/toolchain\n"})
    modproxy.serve(zip_path(GOVERSION, platform), zip_bytes)
    db.add_zip(TOOLCHAIN_MODULE, version, zip_bytes)
    db.publish(modproxy)
    modproxy.add("example.com/tchello", "v1.0.0", hello_module("example.com/tchello", "v1.0.0", "from the proxy"))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no go to discover
    cfg = make_config(tmp_path / "data", modproxy, toolchains={}, cache_dir=str(server_cache),
                      environment=(f"GOSUMDB={db.vkey}", "GONOSUMDB=example.com"))
    app = create_app(cfg)
    assert app.extensions["gobuild"].toolchains.installed() == []
    client = app.test_client()
    r = client.get("/example.com/tchello@v1.0.0/linux-amd64-latest/tchello-v1.0.0-latest")
    assert r.status_code == 307 and GOVERSION in r.headers["Location"]  # latest comes from the proxy's list
    r = client.get(r.headers["Location"])
    assert r.status_code == 307, r.get_data(as_text=True)
    built_sum = r.headers["Location"].split("/")[-2]
    assert (tmp_path / "data" / "sdk" / GOVERSION / "bin" / "go").is_file()
    spec = BuildSpec.parse(f"example.com/tchello@v1.0.0/linux-amd64-{GOVERSION}/", set(DEFAULT_TARGETS))
    assert built_sum == direct_sum(spec, modproxy.url, tmp_path / "direct")
    store = app.extensions["gobuild"].store
    log = store.read_blob(store.result(spec).log).decode()
    assert log.startswith(f"gobuild: installing go {GOVERSION} [")  # the build page says why it takes longer
