"""The package installs: a wheel built from the source, installed into a fresh venv, serves pages.

Nothing is downloaded: the wheel is built without isolation (the build backend is installed, see
requirements/dev.in), and the venv sees the installed dependencies (--system-site-packages) while
pip installs only the wheel (--no-deps --no-index).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from gobuild.spec import sum_from_digest
from tests.conftest import GOVERSION
from tests.modproxy import ModuleProxy, hello_module
from tests.realserver import ROOT, real_server


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the gobuild wheel installed, built from a copy of the source."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"  # build there: the build writes build/ and *.egg-info beside pyproject.toml
    src.mkdir()
    shutil.copy(ROOT / "pyproject.toml", src / "pyproject.toml")
    shutil.copytree(ROOT / "gobuild", src / "gobuild", ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp / "dist"
    run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(src)], tmp)
    wheel = next(dist.glob("gobuild-*.whl"))
    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], tmp)
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)], tmp)
    return venv


def run(argv: list[str], cwd: Path) -> str:
    """Run a command without PYTHONPATH (the checkout must not leak in); its stdout, or its output on failure."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    assert out.returncode == 0, f"{argv[:4]} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


def test_the_wheel_holds_templates_and_static_files(venv: Path) -> None:
    where = run([str(venv / "bin" / "python"), "-c", "import gobuild; print(gobuild.__file__)"], venv)
    package = Path(where.strip()).parent
    assert package.is_relative_to(venv), f"gobuild imported from {package}, not from the venv"
    assert (package / "templates" / "base.html").is_file()
    assert (package / "static" / "style.css").read_bytes() == (ROOT / "gobuild" / "static" / "style.css").read_bytes()


def test_installed_server_serves_home_static_and_a_built_result(
        venv: Path, tmp_path: Path, server_cache: Path) -> None:
    """`gobuild serve` of the venv, run outside the checkout, builds for real through the test proxy."""
    workdir = tmp_path / "run"
    workdir.mkdir()
    with ModuleProxy() as proxy, real_server(workdir, proxy.url, command=[str(venv / "bin" / "gobuild"), "serve"],
                                             cwd=workdir, cache_dir=str(server_cache)) as base:
        proxy.add("example.com/hello", "v1.0.0", hello_module("example.com/hello", "v1.0.0"))
        home = requests.get(base + "/", timeout=10)
        assert home.status_code == 200 and "Try a module" in home.text
        css = requests.get(base + "/static/style.css", timeout=10)
        assert css.status_code == 200 and css.content == (ROOT / "gobuild" / "static" / "style.css").read_bytes()
        name = f"hello-v1.0.0-{GOVERSION}"
        binary = requests.get(f"{base}/example.com/hello@v1.0.0/linux-amd64-{GOVERSION}/{name}", timeout=300,
                              headers={"Accept-Encoding": "identity"})
        assert binary.status_code == 200, binary.text
        sum_ = sum_from_digest(hashlib.sha256(binary.content).digest())
        result = requests.get(binary.url.removesuffix(name), timeout=10)
        assert result.status_code == 200 and sum_ in result.text and "gobuild get" in result.text
    assert (workdir / "data" / "tlog" / "signer.key").is_file()  # the data dir is where the config says
