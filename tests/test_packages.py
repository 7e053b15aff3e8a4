"""Command detection as `go list` sees it for a target: build constraints, file names, cgo, skipped dirs."""

from __future__ import annotations

import pathlib
import shutil

import pytest

from gobuild.packages import ConstraintError, Target, constraints_allow, eval_go_build, main_packages, name_allows
from tests.modproxy import ModuleProxy
from tests.test_goproxy import go_build_cache, go_env, run_go  # noqa: F401  (go_build_cache is a fixture)

MAIN = "package main\n\nfunc main() {}\n"

FILES: dict[str, str] = {
    "go.mod": "module example.com/m\n\ngo 1.22\n",
    "lib.go": "package m\n",
    "cmd/plain/main.go": MAIN,
    "pair/x/main.go": MAIN,  # go orders pair-b/x before pair/x (by path, '-' < '/')
    "pair-b/x/main.go": MAIN,
    "upgrade/upgrade.go": "// +build upgrade\n\n" + MAIN,  # go-sqlite3's upgrade/
    "upgrade2/upgrade.go": "//go:build upgrade\n\n" + MAIN,
    "gen/gen.go": "//go:build ignore\n\n" + MAIN,
    "gen/lib.go": "package gen\n",
    "linuxonly/main_linux.go": MAIN,
    "winonly/main_windows_amd64.go": MAIN,
    "armonly/main_arm64.go": MAIN,
    "cgoonly/main.go": 'package main\n\n// int f() { return 1; }\nimport "C"\n\nfunc main() { println(C.f()) }\n',
    "cgomixed/main.go": MAIN,
    "cgomixed/c.go": 'package main\n\nimport "C"\n',
    "testsonly/main_test.go": MAIN,
    "testdata/x/main.go": MAIN,
    "vendor/x/main.go": MAIN,
    "_hidden/main.go": MAIN,
    ".hidden/main.go": MAIN,
    "nested/go.mod": "module example.com/m/nested\n",
    "nested/main.go": MAIN,
    "unixtag/main.go": "//go:build unix && !plan9\n\n" + MAIN,
    "future/main.go": "//go:build go1.99\n\n" + MAIN,
    "pastgo/main.go": "//go:build go1.18\n\n" + MAIN,
    "afterpackage/main.go": "package main\n\n// +build ignore\n\nfunc main() {}\n",
    "noblank/main.go": "// +build ignore\npackage main\n\nfunc main() {}\n",
    "starcomment/main.go": "/* a\nb */\n\n//go:build ignore\n\n" + MAIN,
    "underscorefile/_main.go": MAIN,
    "docs/main.go": MAIN,
    "docs/doc.go": "package documentation\n",
    "plusor/main.go": "// +build linux,amd64 windows\n\n" + MAIN,
    "andcheck/main.go": "// +build linux\n// +build arm64\n\n" + MAIN,
    "suffixonly/linux.go": MAIN,  # "linux.go" alone is no constraint
    "dotname/main_linux.pb.go": MAIN,
    "mixed/main.go": MAIN,
    "mixed/z.go": "package zz\n",
    "badexpr/main.go": "//go:build linux &&\n\n" + MAIN,
    "cgoblock/main.go": 'package main\n\nimport (\n\t"C" // cgo\n\t"fmt"\n)\n\nfunc main() { fmt.Println(C.int(1)) }\n',
}
TARGETS = [("linux", "amd64"), ("windows", "amd64"), ("android", "arm64"), ("darwin", "arm64"), ("plan9", "386")]


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("m")
    for name, content in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(content)
    return root


def test_linux_amd64_commands(module_dir: pathlib.Path) -> None:
    assert main_packages(module_dir, Target("linux", "amd64", 26)) == [
        "/afterpackage", "/cgomixed", "/cmd/plain", "/docs", "/dotname", "/linuxonly", "/noblank", "/pair-b/x",
        "/pair/x", "/pastgo", "/plusor", "/suffixonly", "/unixtag"]


@pytest.mark.parametrize("goos,goarch", TARGETS)
def test_equal_to_go_list(module_dir: pathlib.Path, tmp_path: pathlib.Path, go_build_cache: pathlib.Path,  # noqa: F811
                          goos: str, goarch: str) -> None:
    work = tmp_path / "m"
    shutil.copytree(module_dir, work)
    with ModuleProxy() as proxy:
        env = go_env(proxy, tmp_path, go_build_cache) | {"GOOS": goos, "GOARCH": goarch, "GOPROXY": "off"}
    fmt = '{{if and (eq .Name "main") .GoFiles (not .Error)}}{{.ImportPath}}{{end}}'
    out = run_go(env, work, "list", "-e", "-f", fmt, "./...")
    go_says = sorted(line.removeprefix("example.com/m") or "/" for line in out.split())
    assert main_packages(work, Target(goos, goarch, 26)) == go_says


@pytest.mark.parametrize("expr,want", [
    ("linux", True), ("!linux", False), ("linux && amd64", True), ("linux && arm64", False),
    ("windows || (linux && !arm64)", True), ("!(linux || windows)", False), ("ignore", False),
    ("unix", True), ("go1.21 && !go1.27", True), ("gc", True), ("cgo", False), ("amd64.v1", True),
])
def test_go_build_expressions(expr: str, want: bool) -> None:
    assert eval_go_build(" " + expr, Target("linux", "amd64", 26).has_tag) is want


@pytest.mark.parametrize("expr", ["", "linux &&", "(linux", "linux)", "a b", "a & b", "!"])
def test_bad_go_build_expressions(expr: str) -> None:
    with pytest.raises(ConstraintError):
        eval_go_build(expr, Target().has_tag)


def test_two_go_build_lines_are_an_error() -> None:
    with pytest.raises(ConstraintError):
        constraints_allow("//go:build linux\n//go:build amd64\n\npackage main\n", Target())


@pytest.mark.parametrize("name,want", [
    ("x_linux.go", True), ("x_windows.go", False), ("x_linux_arm64.go", False), ("x_amd64.go", True),
    ("linux.go", True), ("x_linux_test.go", True), ("x_unix.go", True), ("x_foo_bar.go", True),
])
def test_file_name_suffixes(name: str, want: bool) -> None:
    assert name_allows(name, Target("linux", "amd64")) is want


def test_long_import_block_is_read_in_linear_time(tmp_path: pathlib.Path) -> None:
    import time

    block = '\tx "example.com/x"\n' * 5000  # and no closing parenthesis
    (tmp_path / "main.go").write_text("package main\n\nimport (\n" + block + "\nfunc main() {}\n")
    started = time.monotonic()
    assert main_packages(tmp_path, Target()) == ["/"]
    assert time.monotonic() - started < 2  # a backtracking regex took minutes here


def test_android_and_ios_imply_linux_and_darwin() -> None:
    assert name_allows("x_linux.go", Target("android", "arm64"))
    assert constraints_allow("//go:build darwin\n\npackage main\n", Target("ios", "arm64"))
    assert not constraints_allow("//go:build android\n\npackage main\n", Target("linux", "arm64"))
