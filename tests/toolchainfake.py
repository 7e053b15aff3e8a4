"""Test helpers: fake golang.org/toolchain versions and a Go-style checksum database, both served by ModuleProxy."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

from gobuild import dirhash, module
from gobuild.spec import GoVersion
from gobuild.sumdb import SumDB, parse_gosumdb
from gobuild.tlog import merkle, note
from gobuild.tlog.server import TransparencyLog
from gobuild.toolchains import TOOLCHAIN_MODULE, toolchain_module_version
from tests.modproxy import ModuleProxy, make_zip

PLATFORM = ("linux", "amd64")  # the fake toolchains are shell scripts: any Unix host runs them

# A short `go tool dist list -json`: go's order, with a port that is not first-class first.
DIST_LIST = [
    {"GOOS": "aix", "GOARCH": "ppc64", "CgoSupported": True, "FirstClass": False},
    {"GOOS": "darwin", "GOARCH": "arm64", "CgoSupported": True, "FirstClass": True},
    {"GOOS": "linux", "GOARCH": "amd64", "CgoSupported": True, "FirstClass": True},
    {"GOOS": "linux", "GOARCH": "riscv64", "CgoSupported": True, "FirstClass": False},
    {"GOOS": "wasip1", "GOARCH": "wasm", "CgoSupported": False, "FirstClass": False},
    {"GOOS": "windows", "GOARCH": "amd64", "CgoSupported": True, "FirstClass": True},
]
# What -broken adds (go1.21 and newer): ports go install still builds for.
BROKEN = [{"GOOS": "freebsd", "GOARCH": "riscv64", "CgoSupported": True, "FirstClass": False, "Broken": True}]


def fake_go_script(goversion: str, says: str | None = None) -> str:
    """A bin/go answering `version` and `tool dist list -json [-broken]` like that Go version.

    Like cmd/dist before go1.21, `tool dist list` needs `uname` on PATH; before go1.21 it
    knows no -broken flag.
    """
    old = GoVersion.parse(goversion).minor < 21
    listing, with_broken = json.dumps(DIST_LIST), json.dumps(DIST_LIST + BROKEN)
    uname = "uname -m >/dev/null || { echo 'go tool dist: FAILED: uname -m: not found' >&2; exit 2; }\n" if old else ""
    broken = ("echo 'flag provided but not defined: -broken' >&2; exit 2" if old
              else f"printf '%s\\n' '{with_broken}'; exit 0")
    return (
        "#!/bin/sh\n"
        f'if [ "$1" = version ]; then echo "go version {says or goversion} linux/amd64"; exit 0; fi\n'
        + uname +
        f"if [ \"$*\" = 'tool dist list -json' ]; then printf '%s\\n' '{listing}'; exit 0; fi\n"
        f"if [ \"$*\" = 'tool dist list -json -broken' ]; then {broken}; fi\n"
        'echo "fake go: unsupported: $*" >&2\nexit 2\n'
    )


def fake_toolchain_files(goversion: str, says: str | None = None) -> dict[str, str | bytes]:
    """The files of a tiny toolchain module: bin/go, a tool, a lib exec helper and std's _go.mod files."""
    return {
        "go.mod": "module golang.org/toolchain\n",
        "VERSION": f"{goversion}\n",
        "bin/go": fake_go_script(goversion, says),
        "bin/gofmt": "#!/bin/sh\nexit 0\n",
        "pkg/tool/linux_amd64/compile": "#!/bin/sh\nexit 0\n",
        "lib/wasm/go_js_wasm_exec": "#!/bin/sh\nexit 0\n",
        "lib/time/zoneinfo.zip": b"PK\x05\x06" + bytes(18),
        "src/_go.mod": "module std\n",
        "src/cmd/_go.mod": "module cmd\n",
        "src/fmt/print.go": "package fmt\n",
    }


def module_version(goversion: str, platform: tuple[str, str] = PLATFORM) -> str:
    """The golang.org/toolchain version of a Go version for a platform."""
    return toolchain_module_version(goversion, *platform)


def zip_path(goversion: str, platform: tuple[str, str] = PLATFORM) -> str:
    """The proxy path of a toolchain zip, as ModuleProxy.requests shows it."""
    return f"/{TOOLCHAIN_MODULE}/@v/{module.escape_version(module_version(goversion, platform))}.zip"


class FakeSumDB:
    """A checksum database with a test key, made with gobuild's own tlog server code."""

    def __init__(self, directory: Path, name: str = "sumdb.example") -> None:
        self.name = name
        skey, self.vkey = note.generate_key(name)
        self.log = TransparencyLog(directory, skey)
        self.keys: dict[str, int] = {}

    def add(self, path: str, version: str, h1: str) -> None:
        """Log the go.sum lines of path@version (its zip hash h1 and a go.mod hash)."""
        mod_h1 = "h1:" + "A" * 43 + "="
        text = f"{path} {version} {h1}\n{path} {version}/go.mod {mod_h1}\n".encode()
        self.keys[module.escape_path(path) + "@" + module.escape_version(version)] = self.log.append(text)

    def add_zip(self, path: str, version: str, zip_bytes: bytes) -> str:
        """Log the hash of a zip; return it."""
        h1 = dirhash.hash_zip(io.BytesIO(zip_bytes))
        self.add(path, version, h1)
        return h1

    def publish(self, proxy: ModuleProxy) -> None:
        """Serve the current tree at the proxy's /sumdb/<name>/ as a proxy that supports it would."""
        base = f"/sumdb/{self.name}"
        proxy.serve(base + "/supported", b"")
        proxy.serve(base + "/latest", self.log.signed_tree_head())
        for key, n in self.keys.items():
            proxy.serve(f"{base}/lookup/{key}", self.log.lookup_response(n))
        for tile in merkle.new_tiles(8, 0, self.log.size()):
            proxy.serve(f"{base}/{tile.path()}", self.log.tile(tile.path()[len("tile/"):])[0])

    def client(self, proxy: ModuleProxy, state_dir: Path, url: str = "") -> SumDB:
        """A SumDB that trusts this database's key, reached through proxy (or at url)."""
        setting = parse_gosumdb(f"{self.vkey} {url}".strip())
        assert setting is not None
        return SumDB(setting, proxy.url, state_dir, timeout=5.0)


def add_toolchain(proxy: ModuleProxy, db: FakeSumDB | None, goversion: str,
                  files: dict[str, str | bytes] | None = None, platform: tuple[str, str] = PLATFORM) -> bytes:
    """Offer a fake toolchain on the proxy and log its hash in db (not yet published); return its zip."""
    version = module_version(goversion, platform)
    files = files if files is not None else fake_toolchain_files(goversion)
    proxy.add(TOOLCHAIN_MODULE, version, files)
    data = {k: v.encode() if isinstance(v, str) else v for k, v in files.items()}
    zip_bytes = make_zip(TOOLCHAIN_MODULE, version, data)
    if db is not None:
        db.add_zip(TOOLCHAIN_MODULE, version, zip_bytes)
    return zip_bytes


def real_toolchain_zip(goroot: Path, goversion: str, platform: tuple[str, str]) -> bytes:
    """A golang.org/toolchain zip made from a local GOROOT as Go's distpack makes one.

    Entries have no modes (the installer must make bin/ and pkg/tool/ executable), nested go.mod
    files are stored as _go.mod, and what a build does not need (src/cmd, testdata, docs) is
    left out to keep it small. Stored uncompressed: the test proxy holds it in memory anyway.
    """
    prefix = f"{TOOLCHAIN_MODULE}@{toolchain_module_version(goversion, *platform)}/"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for top in ("VERSION", "go.env", "bin", "lib", "pkg/include", "pkg/tool", "src"):
            path = goroot / top
            files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
            for f in files:
                rel = f.relative_to(goroot).as_posix()
                if rel.startswith("src/cmd/") or "/testdata/" in rel or "/_" in rel:
                    continue
                if f.name == "go.mod":
                    rel = rel.removesuffix("go.mod") + "_go.mod"
                z.writestr(zipfile.ZipInfo(prefix + rel, (2024, 1, 1, 0, 0, 0)), f.read_bytes())
    return buf.getvalue()
