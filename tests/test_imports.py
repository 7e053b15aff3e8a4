"""What a serving process leaves unimported until a request needs it (memory: issue 16)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import GOROOT, GOVERSION
from tests.modproxy import ModuleProxy
from tests.realserver import ROOT

LAZY = ("limits", "cyclonedx", "feedgenerator", "redis", "rq")  # rate limits (a build start), SBOMs, feeds, the queue

SCRIPT = """
import json, sys
from gobuild import config
from gobuild.web import create_app
app = create_app(config.Config(**json.loads(sys.argv[1])).with_overrides())
client = app.test_client()
for path in ("/", "/tlog/latest", "/tlog/tile/8/0/000.p/1", "/robots.txt", "/static/style.css"):
    client.get(path)
print(json.dumps(sorted(m for m in sys.argv[2].split(",") if m in sys.modules)))
"""


def test_a_serving_process_imports_rarely_used_libraries_only_when_asked(tmp_path: Path) -> None:
    with ModuleProxy() as proxy:
        values = {"data_dir": str(tmp_path / "data"), "goproxy": proxy.url, "environment": ["GOSUMDB=off"],
                  "toolchains": {GOVERSION: GOROOT}}
        out = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(values), ",".join(LAZY)], cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1]) == []
