"""The gobuild command: config errors are one line and exit 2; sum; a real server answers curl's request."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from gobuild.cli import main
from gobuild.spec import sum_from_digest
from tests.conftest import GOROOT, GOVERSION
from tests.modproxy import ModuleProxy, hello_module
from tests.realserver import real_server

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"listen": 8000}', "listen has the wrong type"),
    ('{"lisen": "x"}', "unknown key 'lisen'"),
    ('{"listen": "nohostport"}', "must be host:port"),
    ('{"environment": ["NOEQUALS"]}', "must be KEY=VALUE"),
    ('{"toolchains": {"go1.20.1": "/usr/local/go"}}', "is really"),
    ('{"toolchains": {"go1.20.1": "/nonexistent"}}', "cannot run"),
    ("[]", "must be a JSON object"),
])
def test_config_errors_are_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           content: str, message: str) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(content)
    assert main(["serve", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("config", [
    {"toolchains": {"go1.20.1": GOROOT}},
    {"toolchains": {"go1.20.1": "/nonexistent"}},
    {"environment": ["GOSUMDB=db.example+nokey"]},
    {"goproxy": "direct"},
    {"goproxy": "ftp://proxy.example"},
    {"verifiers": [{"key": "not-a-key"}]},
    {"signer_key_file": "/nonexistent/signer.key"},
])
def test_config_error_creates_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      config: dict[str, object]) -> None:
    """The whole config is checked before the data dir (or anything in it) is created."""
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"data_dir": str(tmp_path / "data"), "goproxy": "http://127.0.0.1:1", **config}))
    assert main(["serve", "--config", str(cfg)]) == 2
    assert "config" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("busy_key", ["listen", "admin_listen"])
def test_a_busy_port_is_named_and_creates_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  busy_key: str) -> None:
    ports = {}
    for key in ("listen", "admin_listen"):  # free ports for both (the server takes only the free one)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports[key] = f"127.0.0.1:{s.getsockname()[1]}"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        ports[busy_key] = f"127.0.0.1:{busy.getsockname()[1]}"
        cfg = tmp_path / "config.json"
        cfg.write_text(json.dumps({"data_dir": str(tmp_path / "data"), "goproxy": "http://127.0.0.1:1", **ports}))
        assert main(["serve", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert f"{busy_key} {ports[busy_key]}" in err and "in use" in err and err.count("\n") == 1
    assert not (tmp_path / "data").exists()


def test_missing_config_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--config", "/nonexistent.json"]) == 2
    assert "No such file" in capsys.readouterr().err


def test_example_config_loads_and_matches_gobuild_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads((ROOT / "config.example.json").read_text())


def test_sum_of_stdin() -> None:
    data = b"\x7fELF" + bytes(range(256)) * 100
    main = "import sys; from gobuild.cli import main; sys.exit(main())"
    out = subprocess.run([sys.executable, "-c", main, "sum"], input=data, capture_output=True, cwd=ROOT, check=True)
    assert out.stdout.decode().strip() == sum_from_digest(hashlib.sha256(data).digest())


def test_real_server_serves_the_readme_curl_line(tmp_path: Path, server_cache: Path) -> None:
    """`python app.py --config` with waitress; a download like `curl -fL` follows the redirect."""
    with ModuleProxy() as proxy, real_server(tmp_path, proxy.url, cache_dir=str(server_cache)) as base:
        proxy.add("example.com/hello", "v1.0.0", hello_module("example.com/hello", "v1.0.0"))
        name = f"hello-v1.0.0-{GOVERSION}"
        r = requests.get(f"{base}/example.com/hello@v1.0.0/linux-amd64-{GOVERSION}/{name}", timeout=300,
                         headers={"Accept-Encoding": "identity"})
        assert r.status_code == 200
        got = sum_from_digest(hashlib.sha256(r.content).digest())
        assert [h.status_code for h in r.history] == [307]
        assert r.url.endswith(f"/{got}/{name}")
        assert int(r.headers["Content-Length"]) == len(r.content)
        home = requests.get(base + "/", timeout=10)
        assert home.status_code == 200 and got in home.text  # listed under recent builds
