"""gobuild against real, popular modules from the configured module proxy, compared with `go` itself.

Not run by CI (marked network): `python -m pytest -m network -s tests/test_realworld.py`. It takes
GOPROXY and GOSUMDB from `go env`, and for each module compares
- our "latest" with `go list -m <module>@latest`,
- our commands of that version with `go list` of its main packages for linux/amd64,
and for small commands our sum with a direct `go install -trimpath -ldflags=-buildid=`.
Each test prints a table (module, ours, go's, equal?) and the totals; differences that are
understood are listed in EXPLAINED (and in the README) instead of failing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gobuild import config as configmod
from gobuild.goproxy import GoProxyClient, GoProxyError
from gobuild.packages import Target, main_packages
from gobuild.spec import BuildSpec, sum_from_digest
from gobuild.web import create_app
from tests.conftest import GOROOT, GOVERSION
from tests.gohelp import direct_sum

pytestmark = pytest.mark.network

GO = f"{GOROOT}/bin/go"

# (module, why it is here)
MODULES: list[tuple[str, str]] = [
    ("golang.org/x/example", "multi-command, vanity path"),
    ("golang.org/x/tools", "many commands, vanity path, nested modules"),
    ("golang.org/x/vuln", "vanity path"),
    ("github.com/mjl-/sherpa", "command in a sub directory"),
    ("github.com/BurntSushi/toml", "upper-case path"),
    ("github.com/FiloSottile/age", "upper-case path, moved to a vanity path"),
    ("filippo.io/age", "vanity path, multi-command"),
    ("honnef.co/go/tools", "vanity path, multi-command"),
    ("google.golang.org/protobuf", "vanity path, protoc-gen-go"),
    ("github.com/golang/protobuf", "deprecated, retractions"),
    ("github.com/prometheus/prometheus", "+incompatible history, compatible v0 with go.mod"),
    ("github.com/mattn/go-sqlite3", "+incompatible v2, command behind a build tag, cgo"),
    ("github.com/docker/docker", "+incompatible only"),
    ("github.com/coreos/etcd", "+incompatible, moved"),
    ("github.com/influxdata/influxdb", "+incompatible history"),
    ("github.com/go-redis/redis", "+incompatible history, moved to /v8"),
    ("github.com/sirupsen/logrus", "library, no command"),
    ("github.com/spf13/cobra", "library, no command"),
    ("gopkg.in/yaml.v3", "gopkg.in path, no command"),
    ("github.com/gorilla/mux", "library, no command"),
    ("github.com/golang/mock", "single command, archived"),
    ("go.uber.org/mock", "vanity path, mockgen"),
    ("mvdan.cc/gofumpt", "vanity path, single command"),
    ("mvdan.cc/sh/v3", "/vN module, multi-command"),
    ("github.com/mikefarah/yq/v4", "/vN module, root command"),
    ("github.com/go-task/task/v3", "/vN module"),
    ("github.com/caddyserver/caddy/v2", "/vN module, cmd/caddy"),
    ("github.com/caddyserver/caddy", "v1 path of a module that moved to /v2"),
    ("github.com/securego/gosec/v2", "/vN module"),
    ("github.com/go-delve/delve", "build tags, vendor-like testdata"),
    ("github.com/kisielk/errcheck", "single command"),
    ("github.com/air-verse/air", "single command, renamed"),
    ("github.com/golangci/golangci-lint", "many nested packages"),
    ("github.com/goreleaser/goreleaser/v2", "/vN module"),
    ("github.com/nats-io/nats-server/v2", "/vN module, long history"),
    ("github.com/ethereum/go-ethereum", "many commands, cgo in places"),
    ("github.com/cosmos/cosmos-sdk", "replace directives, nested modules"),
    ("github.com/gohugoio/hugo", "build tags (extended), large"),
    ("github.com/hashicorp/terraform", "large, single command"),
    ("github.com/rclone/rclone", "large, build tags"),
    ("tailscale.com", "vanity path, many commands, OS-specific files"),
    ("github.com/google/go-jsonnet", "multi-command"),
    ("github.com/cespare/reflex", "single command, old"),
    ("github.com/go-gl/example", "cgo-only commands (through their imports)"),
]

# Small commands whose sum we compare with a direct go install: (module, version, dir).
SUMS = [
    ("golang.org/x/example/hello", "latest", "/"),
    ("github.com/mjl-/sherpa", "v0.6.0", "/cmd/sherpaclient"),
    ("github.com/BurntSushi/toml", "latest", "/cmd/tomlv"),
    ("mvdan.cc/gofumpt", "latest", "/"),
    ("github.com/cespare/reflex", "latest", "/"),
    ("github.com/kisielk/errcheck", "latest", "/"),
    ("golang.org/x/tools", "latest", "/cmd/stringer"),
    ("filippo.io/age", "latest", "/cmd/age-keygen"),
    ("github.com/golang/mock", "latest", "/mockgen"),
    ("github.com/hashicorp/terraform", "latest", "/"),  # replace directives: go install refuses, so do we
]

# (test, module) -> why our answer differs from go's and why that is right.
EXPLAINED: dict[tuple[str, str], str] = {}


def _go_env(name: str) -> str:
    return subprocess.run([GO, "env", name], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of the `go` runs that say what is right: the configured proxy and checksum database."""
    home = tmp_path_factory.mktemp("gohome")
    return {
        "PATH": f"{GOROOT}/bin:/usr/bin:/bin", "HOME": str(home), "GOPATH": str(home / "go"),
        "GOMODCACHE": str(home / "mod"), "GOCACHE": str(home / "cache"), "GOFLAGS": "-modcacherw",
        "GOPROXY": _go_env("GOPROXY"), "GOSUMDB": _go_env("GOSUMDB"), "GOTOOLCHAIN": "local",
        "CGO_ENABLED": "0", "GOWORK": "off", "GOTELEMETRY": "off",
    }


def _go(env: dict[str, str], cwd: Path, *args: str) -> tuple[bool, str]:
    proc = subprocess.run([GO, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:  # go mod download -json says why on stdout
        return False, ((proc.stderr + proc.stdout).strip().splitlines() or ["?"])[-1]
    return True, proc.stdout


def _table(title: str, rows: list[tuple[str, str, str, bool, str]]) -> str:
    """Markdown: module, ours, go's, equal?; then the totals."""
    lines = [f"### {title}", "", "| module | ours | go's | equal? |", "|---|---|---|---|"]
    for name, ours, gos, same, why in rows:
        mark = "yes" if same else f"no: {why}" if why else "**NO**"
        lines.append(f"| {name} | {ours or '-'} | {gos or '-'} | {mark} |")
    equal = sum(1 for r in rows if r[3])
    explained = sum(1 for r in rows if not r[3] and r[4])
    unexplained = len(rows) - equal - explained
    lines += ["", f"{len(rows)} rows: {equal} equal, {explained} explained, {unexplained} unexplained", ""]
    return "\n".join(lines)


def _report(title: str, rows: list[tuple[str, str, str, bool, str]]) -> None:
    text = _table(title, rows)
    for base in _go_env("GOPROXY").replace("|", ",").split(","):
        if "://" in base:  # errors quote the proxy: name it by its setting instead
            text = text.replace(base.rstrip("/"), "$GOPROXY")
    print("\n" + text)
    if out := os.environ.get("REALWORLD_RESULTS"):  # collect every table into one file
        with open(out, "a") as f:
            f.write(text + "\n")
    unexplained = [r[0] for r in rows if not r[3] and not r[4]]
    assert not unexplained, f"differences from go: {unexplained}"


@pytest.fixture(scope="module")
def latest(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, str]]:
    """module -> (our latest or error, go's latest or error)."""
    cwd = tmp_path_factory.mktemp("outside-any-module")
    out = {}
    with GoProxyClient(env["GOPROXY"], timeout=60) as client:
        for mod, _ in MODULES:
            try:
                ours = client.resolve(mod, "latest")
            except GoProxyError as e:
                ours = f"error: {str(e)[:80]}"
            ok, text = _go(env, cwd, "list", "-m", "-json", f"{mod}@latest")
            out[mod] = (ours, json.loads(text)["Version"] if ok else f"error: {text[:80]}")
    return out


def test_latest_equals_go_list_m(latest: dict[str, tuple[str, str]]) -> None:
    rows = [(mod, ours, gos, ours == gos or _both_fail(ours, gos), EXPLAINED.get(("latest", mod), ""))
            for mod, (ours, gos) in latest.items()]
    _report("latest: ours and `go list -m <module>@latest`", rows)
    assert len(rows) >= 30


def _go_minor(moddir: Path) -> int:
    """The Go minor version that lists the module: ours, or the newer one its go.mod asks for."""
    ours = int(GOVERSION.split(".")[1])
    gomod = moddir / "go.mod"
    m = re.search(r"^go 1\.([0-9]+)", gomod.read_text(), re.MULTILINE) if gomod.exists() else None
    return max(ours, int(m.group(1))) if m else ours


def _both_fail(ours: str, gos: str) -> bool:
    """Neither we nor go could answer (e.g. the proxy does not serve the module): the same outcome."""
    return ours.startswith("error") and gos.startswith("error")


def _go_commands(env: dict[str, str], mod: str, moddir: Path, work: Path) -> str:
    """`go list` of the main packages in a copy of the module's tree, for linux/amd64, as dirs."""
    shutil.copytree(moddir, work)
    for p in [work, *work.rglob("*")]:
        p.chmod(p.stat().st_mode | 0o200)
    if not (work / "go.mod").exists():  # a version from before modules: go list needs one
        (work / "go.mod").write_text(f"module {mod}\n")
    fmt = '{{if and (eq .Name "main") .GoFiles}}{{.ImportPath}}{{end}}'
    # -find: the packages themselves, not their dependencies (which would all be downloaded).
    # GOTOOLCHAIN=auto: a module that needs a newer Go is listed by that Go, as on a server whose latest it is.
    ok, text = _go(env | {"GOOS": "linux", "GOARCH": "amd64", "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "auto"}, work,
                   "list", "-e", "-find", "-f", fmt, "./...")
    if not ok:
        return f"error: {text[:80]}"
    return " ".join(sorted(line.removeprefix(mod) or "/" for line in text.split()))


def test_commands_equal_go_list(latest: dict[str, tuple[str, str]], env: dict[str, str],
                                tmp_path_factory: pytest.TempPathFactory) -> None:
    rows = []
    for mod, (ours_latest, version) in latest.items():
        if version.startswith("error"):
            rows.append((mod, ours_latest, version, _both_fail(ours_latest, version), ""))
            continue
        cwd = tmp_path_factory.mktemp("dl")
        # GOTOOLCHAIN=auto: the go.mod of a module may ask for a newer Go than ours, which refuses it.
        ok, text = _go(env | {"GOTOOLCHAIN": "auto"}, cwd, "mod", "download", "-json", f"{mod}@{version}")
        if not ok:
            rows.append((f"{mod}@{version}", "", f"error: {text[:80]}", False, ""))
            continue
        moddir = Path(json.loads(text)["Dir"])
        ours = " ".join(main_packages(moddir, Target("linux", "amd64", _go_minor(moddir)))) or "none"
        gos = _go_commands(env, mod, moddir, cwd / "work") or "none"
        rows.append((f"{mod}@{version}", ours, gos, ours == gos, EXPLAINED.get(("commands", mod), "")))
    _report("commands for linux/amd64: ours and `go list -find ./...` of main packages", rows)


@pytest.fixture(scope="module")
def server(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    data = tmp_path_factory.mktemp("data")
    cfg = configmod.Config(data_dir=str(data), goproxy=env["GOPROXY"], toolchains={GOVERSION: GOROOT},
                           environment=(f"GOSUMDB={env['GOSUMDB']}",), build_timeout=900.0).with_overrides()
    yield create_app(cfg).test_client()


def test_sums_equal_direct_go_install(server, env: dict[str, str],  # type: ignore[no-untyped-def]
                                      tmp_path_factory: pytest.TempPathFactory) -> None:
    rows = []
    cache = tmp_path_factory.mktemp("direct")
    client = GoProxyClient(env["GOPROXY"], timeout=60)
    for mod, version, dir_ in SUMS:
        spec = BuildSpec(mod, client.resolve(mod, version), dir_, "linux", "amd64", GOVERSION)
        r = server.get(spec.link() + spec.download_filename())
        if r.status_code == 307:
            ours = r.headers["Location"].rstrip("/").split("/")[-2]
            with server.get(r.headers["Location"]) as binary:  # streamed from the blob file
                assert sum_from_digest(hashlib.sha256(binary.get_data()).digest()) == ours
        else:
            ours = f"error: {r.status_code} {r.get_data(as_text=True).strip()[:100]}"
        try:
            gos = direct_sum(spec, env["GOPROXY"], cache)
        except subprocess.CalledProcessError as e:
            gos = f"error: {(e.stderr.decode(errors='replace').strip().splitlines() or ['?'])[-1][:100]}"
        same = ours == gos or _both_fail(ours, gos)
        rows.append((str(spec), ours, gos, same, EXPLAINED.get(("sum", mod + dir_), "")))
    _report("sums: ours and a direct `go install -trimpath -ldflags=-buildid=` (linux/amd64)", rows)
    assert len(rows) >= 8
