"""Against the real module proxy and checksum database (GOPROXY, else `go env GOPROXY`); not in CI.

    python -m pytest -m network tests/test_network.py
"""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
from pathlib import Path

import pytest

from gobuild import config as configmod
from gobuild.spec import sum_from_digest
from gobuild.web import create_app
from tests.conftest import GOROOT, GOVERSION

MODULE = "golang.org/x/example/hello"


@pytest.mark.network
def test_real_module_builds_like_go_install(tmp_path: Path) -> None:
    cfg = configmod.load(None, data_dir=str(tmp_path / "data"), toolchains={GOVERSION: GOROOT})
    client = create_app(cfg).test_client()
    r = client.get(f"/{MODULE}@latest/linux-amd64-{GOVERSION}/hello-latest-{GOVERSION}")
    assert r.status_code == 307, r.get_data(as_text=True)
    r = client.get(r.headers["Location"])
    assert r.status_code == 307, r.get_data(as_text=True)
    location = r.headers["Location"]
    version = location.split("@", 1)[1].split("/", 1)[0]
    r = client.get(location)
    built = sum_from_digest(hashlib.sha256(r.get_data()).digest())
    r.close()
    assert f"/{built}/" in location
    with tempfile.TemporaryDirectory() as home:
        env = {"PATH": f"{GOROOT}/bin:/usr/bin:/bin", "HOME": home, "GOPATH": f"{home}/go", "GOPROXY": cfg.goproxy,
               "CGO_ENABLED": "0", "GOOS": "linux", "GOARCH": "amd64", "GOTOOLCHAIN": GOVERSION}
        subprocess.run(["go", "install", "-trimpath", "-ldflags=-buildid=", f"{MODULE}@{version}"],
                       env=env, cwd=home, check=True, capture_output=True)
        direct = next(p for p in (Path(home) / "go" / "bin").rglob("hello") if p.is_file())
        assert sum_from_digest(hashlib.sha256(direct.read_bytes()).digest()) == built
