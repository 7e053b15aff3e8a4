"""Version queries with go's exact rules, each checked against `go list -m` on the same test proxy."""

from __future__ import annotations

import json
import pathlib
import subprocess

import pytest

from gobuild import gomod, module
from gobuild.goproxy import GoProxyClient, ModuleNotFound
from tests.modproxy import ModuleProxy, hello_module, modproxy  # noqa: F401  (modproxy is a fixture)
from tests.test_goproxy import GO, go_build_cache, go_env, run_go  # noqa: F401  (go_build_cache is a fixture)

M = "example.com/tool"


def _main(go_mod: str | None) -> dict[str, str | bytes]:
    """A command's files; go_mod None: a pre-module version without go.mod."""
    files = hello_module(M, "")
    if go_mod is None:
        del files["go.mod"]
    else:
        files["go.mod"] = go_mod
    return files


def _add(proxy: ModuleProxy, versions: dict[str, str | None]) -> None:
    for v, go_mod in versions.items():
        proxy.add(M, v, _main(go_mod))


GOMOD = f"module {M}\n\ngo 1.22\n"

# name -> (versions with their go.mod, query -> version go picks)
CASES: dict[str, tuple[dict[str, str | None], dict[str, str]]] = {
    # prometheus: v0.x has a go.mod, so the old v2.x+incompatible tags are not "latest".
    "incompatible skipped when compatible has go.mod": (
        {"v0.300.0": GOMOD, "v0.316.0": GOMOD, "v2.5.0+incompatible": None},
        {"latest": "v0.316.0", "v2": "v2.5.0+incompatible", "v0": "v0.316.0", "<v1.0.0": "v0.316.0"}),
    # a module that never had a go.mod: its v2+ tags count.
    "incompatible taken when compatible has no go.mod": (
        {"v1.0.0": None, "v1.1.0": None, "v2.0.3+incompatible": None},
        {"latest": "v2.0.3+incompatible", "v1": "v1.1.0"}),
    # go-sqlite3: v1.x has a go.mod, the old v2.0.3+incompatible tag is not "latest".
    "release before pre-release, incompatible skipped": (
        {"v1.14.0": GOMOD, "v1.15.0-rc.1": GOMOD, "v2.0.3+incompatible": None},
        {"latest": "v1.14.0", "v1.14": "v1.14.0", ">=v1.14.0": "v1.14.0", "v1.15.0-rc.1": "v1.15.0-rc.1"}),
    # even a compatible pre-release beats an incompatible release.
    "compatible pre-release beats incompatible release": (
        {"v1.0.0-rc.1": GOMOD, "v2.0.0+incompatible": None},
        {"latest": "v1.0.0-rc.1", "v2.0.0+incompatible": "v2.0.0+incompatible"}),
    # the latest version's go.mod retracts itself and an older range.
    "retracted versions skipped unless named": (
        {"v1.0.0": GOMOD, "v1.1.0": GOMOD, "v1.2.0": GOMOD,
         "v1.3.0": GOMOD + "\nretract (\n\tv1.3.0 // published by mistake\n\t[v1.1.0, v1.2.0]\n)\n"},
        {"latest": "v1.0.0", "v1": "v1.0.0", "v1.2.0": "v1.2.0",
         "v1.3.0": "v1.3.0", ">v1.0.0": ""}),
    # a retraction in an older go.mod does not count: only the latest version's go.mod does.
    "only the latest go.mod retracts": (
        {"v1.0.0": GOMOD + 'retract "v1.0.0"\n', "v1.1.0": GOMOD + "retract v1.0.0\n", "v1.2.0": GOMOD},
        {"latest": "v1.2.0", "<v1.2.0": "v1.1.0", "<v1.1.0": "v1.0.0", "v1.1.0+build.5": "v1.1.0"}),
    # retraction of the newest compatible version: +incompatible still skipped by the next go.mod.
    "retraction with incompatible history": (
        {"v1.0.0": GOMOD, "v1.1.0": GOMOD + "retract v1.1.0\n", "v2.0.0+incompatible": None},
        {"latest": "v1.0.0"}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_queries_equal_go_list(modproxy: ModuleProxy, tmp_path: pathlib.Path, go_build_cache: pathlib.Path,  # noqa: F811
                               name: str) -> None:
    versions, queries = CASES[name]
    _add(modproxy, versions)
    env = go_env(modproxy, tmp_path, go_build_cache)
    client = GoProxyClient(modproxy.url, timeout=5)
    for query, want in queries.items():
        if want:
            out = json.loads(run_go(env, tmp_path, "list", "-m", "-json", f"{M}@{query}"))
            assert out["Version"] == want, f"go disagrees with the table for {query}"
            assert client.resolve(M, query) == want, query
        else:  # go finds nothing: neither do we
            proc = subprocess.run([GO, "list", "-m", f"{M}@{query}"], env=env, cwd=tmp_path, capture_output=True)
            assert proc.returncode != 0, proc.stdout
            with pytest.raises(ModuleNotFound):
                client.resolve(M, query)


def test_all_retracted_is_not_found(modproxy: ModuleProxy) -> None:  # noqa: F811
    _add(modproxy, {"v1.0.0": GOMOD + "retract v1.0.0\n"})
    with pytest.raises(ModuleNotFound, match="no matching versions"):
        GoProxyClient(modproxy.url, timeout=5).resolve(M, "latest")


def test_go_mod_fetched_once(modproxy: ModuleProxy) -> None:  # noqa: F811
    _add(modproxy, {"v1.0.0": GOMOD, "v2.0.0+incompatible": None})
    client = GoProxyClient(modproxy.url, timeout=5)
    assert [client.resolve(M, "latest") for _ in range(3)] == ["v1.0.0"] * 3
    assert modproxy.requests.count(f"/{M}/@v/v1.0.0.mod") == 1  # .mod of a version never changes


def test_latest_costs_three_requests(modproxy: ModuleProxy) -> None:  # noqa: F811
    _add(modproxy, {"v1.0.0": GOMOD, "v1.1.0": GOMOD})
    assert GoProxyClient(modproxy.url, timeout=5).resolve(M, "latest") == "v1.1.0"
    assert modproxy.requests == [f"/{M}/@v/list", f"/{M}/@v/v1.1.0.mod", f"/{M}/@v/v1.1.0.info"]


def test_pseudo_version_only_module_asks_latest_once(modproxy: ModuleProxy) -> None:  # noqa: F811
    pseudo = "v0.0.0-20240102030405-abcdefabcdef"
    _add(modproxy, {pseudo: GOMOD})
    assert GoProxyClient(modproxy.url, timeout=5).resolve(M, "latest") == pseudo
    assert modproxy.requests == [f"/{M}/@v/list", f"/{M}/@latest", f"/{M}/@v/{pseudo}.mod"]


@pytest.mark.parametrize("query", ["<=v1.2", ">v1", "<vx", ">=1.0.0"])
def test_bad_range_refused_before_any_request(modproxy: ModuleProxy, query: str) -> None:  # noqa: F811
    with pytest.raises(module.InvalidVersion, match="semantic version"):
        GoProxyClient(modproxy.url, timeout=5).resolve(M, query)
    assert modproxy.requests == []


@pytest.mark.parametrize("text,want", [
    ("module m\nretract v1.0.0\n", [("v1.0.0", "v1.0.0")]),
    ("module m\nretract [v1.0.0, v1.1.0] // why\n", [("v1.0.0", "v1.1.0")]),
    ('module m\nretract (\n  "v1.0.0"\n  `v1.2.0` // ok\n)\n', [("v1.0.0", "v1.0.0"), ("v1.2.0", "v1.2.0")]),
    ("module m\n// retract v1.0.0\nrequire (\n  x v1.0.0\n)\n", []),
    ("module m\nretract v1.0\n", []),  # not canonical: go cannot parse the file, nothing is retracted
    ("module m\nretract [v1.1.0, v1.0.0]\n", []),  # backwards interval
    ("module m\nretract v2.0.0+incompatible\n", [("v2.0.0+incompatible", "v2.0.0+incompatible")]),
])
def test_retractions(text: str, want: list[tuple[str, str]]) -> None:
    assert gomod.retractions(text.encode()) == want


def test_is_retracted_ignores_build_metadata() -> None:
    spans = [("v1.0.0", "v1.2.0"), ("v2.0.0", "v2.0.0")]
    assert gomod.is_retracted("v1.1.5-rc.1", spans)
    assert gomod.is_retracted("v2.0.0+incompatible", spans)
    assert not gomod.is_retracted("v1.2.1", spans)
    assert not gomod.is_retracted("v0.9.0", spans)


def test_has_go_mod() -> None:
    assert not gomod.has_go_mod("example.com/a", b"module example.com/a\n")
    assert gomod.has_go_mod("example.com/a", b"module example.com/a\n\ngo 1.16\n")
