"""Test helpers that run the real go command: a direct `go install` to compare gobuild's sums with."""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
from pathlib import Path

from gobuild.spec import BuildSpec, sum_from_digest
from tests.conftest import GOROOT


def direct_sum(spec: BuildSpec, goproxy: str, cache: Path) -> str:
    """Build spec as a person would without gobuild, and return the gobuild sum of the binary.

    CGO_ENABLED=0 GOOS GOARCH GOTOOLCHAIN=<goversion> go install -trimpath -ldflags=-buildid= [-s].
    """
    with tempfile.TemporaryDirectory() as home:
        env = {
            "PATH": f"{GOROOT}/bin:/usr/bin:/bin", "HOME": home, "GOPATH": f"{home}/go",
            "GOPROXY": goproxy, "GOSUMDB": "off", "CGO_ENABLED": "0",
            "GOOS": spec.goos, "GOARCH": spec.goarch, "GOTOOLCHAIN": spec.goversion,
            "GOCACHE": str(cache / "build"), "GOMODCACHE": str(cache / "mod"),
        }
        ld = "-ldflags=-buildid= -s" if spec.stripped else "-ldflags=-buildid="
        subprocess.run(["go", "install", "-trimpath", ld, f"{spec.package}@{spec.version}"],
                       env=env, cwd=home, check=True, capture_output=True)
        bindir = Path(home) / "go" / "bin"
        found = [p for p in bindir.rglob("*") if p.is_file()]
        assert len(found) == 1, found
        assert found[0].name == spec.exec_name
        return sum_from_digest(hashlib.sha256(found[0].read_bytes()).digest())
