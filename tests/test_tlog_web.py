"""The transparency log as the web app serves it: every build logged, lookups, tiles, signed heads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from gobuild.spec import BuildSpec, Record
from gobuild.targets import DEFAULT_TARGETS
from gobuild.tlog import merkle, note
from gobuild.web import create_app
from tests.conftest import GOVERSION, make_config
from tests.modproxy import ModuleProxy, hello_module

SPECS = [f"example.com/hello@v1.0.0/linux-amd64-{GOVERSION}/",
         f"example.com/hello@v1.0.0/linux-amd64-{GOVERSION}-stripped/",
         f"example.com/hello@v1.1.0/linux-arm64-{GOVERSION}/"]


@pytest.fixture(scope="module")
def proxy() -> Iterator[ModuleProxy]:
    with ModuleProxy() as p:
        p.add("example.com/hello", "v1.0.0", hello_module("example.com/hello", "v1.0.0"))
        p.add("example.com/hello", "v1.1.0", hello_module("example.com/hello", "v1.1.0", "hi"))
        p.add("example.com/lib", "v1.0.0", {"go.mod": "module example.com/lib\n\ngo 1.22\n", "lib.go": "package lib\n"})
        yield p


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tlogdata")


@pytest.fixture(scope="module")
def app(proxy: ModuleProxy, data_dir: Path, server_cache: Path) -> Flask:
    return create_app(make_config(data_dir, proxy, cache_dir=str(server_cache), listen="127.0.0.1:8123"))


@pytest.fixture(scope="module")
def built(app: Flask) -> list[bytes]:
    """Build SPECS through lookups (which build on demand); return their records in log order."""
    client = app.test_client()
    records = []
    for s in SPECS:
        r = client.get("/tlog/lookup/" + s)
        assert r.status_code == 200, r.get_data(as_text=True)
        number, text, _ = note.parse_record(r.get_data())
        assert number == len(records)
        records.append(text)
    return records


def verifier(app: Flask) -> note.Verifier:
    return note.Verifier.parse(app.extensions["gobuild"].tlog.verifier_key)


def test_each_build_is_logged_once_with_its_exact_record(app: Flask, built: list[bytes]) -> None:
    store = app.extensions["gobuild"].store
    for s, text in zip(SPECS, built, strict=False):
        spec = BuildSpec.parse(s, set(DEFAULT_TARGETS))
        result = store.result(spec)
        assert text == Record(spec, result.size, result.sum).pack()
        r = app.test_client().get(spec.result_link(result.sum) + "record")
        assert r.get_data() == text
    assert built[0].endswith(b" \n") and built[1].endswith(b" stripped\n")
    # Looking up again, or downloading, appends nothing.
    client = app.test_client()
    assert client.get("/tlog/lookup/" + SPECS[0]).status_code == 200
    assert app.extensions["gobuild"].tlog.size() == len(SPECS)


def test_signed_tree_head_verifies_and_matches_the_records(app: Flask, built: list[bytes]) -> None:
    r = app.test_client().get("/tlog/latest")
    assert r.headers["Content-Type"] == "text/plain; charset=UTF-8"
    opened = note.open_note(r.get_data(), [verifier(app)])
    tree = note.parse_tree(opened.text.encode())
    hashes = merkle.HashList()
    for n, text in enumerate(built):
        hashes.hashes.extend(merkle.stored_hashes(n, text, hashes))
    assert tree == merkle.Tree(len(built), merkle.tree_hash(len(built), hashes))
    assert app.extensions["gobuild"].tlog.verifier_key.startswith("127.0.0.1+")


def test_tiles_rebuild_the_tree(app: Flask, built: list[bytes]) -> None:
    client = app.test_client()
    n = len(built)
    data = client.get(f"/tlog/tile/8/data/000.p/{n}")
    assert data.status_code == 200 and data.headers["Cache-Control"] == "no-cache"
    assert data.get_data() == b"".join(note.format_record(i, t) for i, t in enumerate(built))
    level0 = client.get(f"/tlog/tile/8/0/000.p/{n}").get_data()
    assert level0 == b"".join(merkle.record_hash(t) for t in built)
    hashes = merkle.HashList()
    for i, text in enumerate(built):
        hashes.hashes.extend(merkle.stored_hashes(i, text, hashes))
    head = note.parse_tree(note.open_note(client.get("/tlog/latest").get_data(), [verifier(app)]).text.encode())
    assert merkle.tree_hash(n, hashes) == head.hash


@pytest.mark.parametrize("path, status", [
    ("8/0/001", 404), ("8/0/000.p/200", 404), ("8/data/000.p/99", 404), ("8/1/000.p/1", 404),
    ("8/0/abc", 400), ("8/x/000", 400), ("9/0/000", 400), ("0/0/000", 400),
    ("8/0/000.p/0", 400), ("8/0/000.p/256", 400),
])
def test_bad_and_future_tiles(app: Flask, built: list[bytes], path: str, status: int) -> None:
    r = app.test_client().get("/tlog/tile/" + path)
    assert r.status_code == status, r.get_data(as_text=True)
    assert "Traceback" not in r.get_data(as_text=True)


def test_full_tiles_are_immutable(tmp_path: Path, proxy: ModuleProxy) -> None:
    app = create_app(make_config(tmp_path / "data", proxy))
    log = app.extensions["gobuild"].tlog
    for i in range(256):
        log.append(f"example.com/x v1.0.{i} / linux amd64 go1.26.8 1 0N7e6zxGtHCObqNBDA_mXKv7-A9M \n".encode())
    r = app.test_client().get("/tlog/tile/8/0/000")
    assert r.status_code == 200 and len(r.get_data()) == 256 * 32
    assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert app.test_client().get("/tlog/tile/8/data/000").headers["Cache-Control"].endswith("immutable")


def test_lookup_of_a_built_canonical_spec_asks_no_proxy(app: Flask, built: list[bytes], proxy: ModuleProxy) -> None:
    before = len(proxy.requests)
    r = app.test_client().get("/tlog/lookup/" + SPECS[2])
    assert r.status_code == 200
    assert len(proxy.requests) == before


def test_lookup_resolves_latest(app: Flask, built: list[bytes]) -> None:
    r = app.test_client().get("/tlog/lookup/example.com/hello@latest/linux-arm64-latest/")
    assert r.status_code == 200
    _, text, _ = note.parse_record(r.get_data())
    assert text == built[2]


@pytest.mark.parametrize("key, status", [
    ("example.com/lib@v1.0.0/linux-amd64-latest/", 404),
    ("example.com/hello@v9.9.9/linux-amd64-latest/", 404),
    ("example.com/hello@v1.0.0/linux-amd64-go1.99.0/", 404),
    ("example.com/hello@v1.0.0/plan10-amd64-latest/", 404),
    ("example.com/hello@v1.0.0/linux-amd64-latest", 404),
    ("nodot@v1.0.0/linux-amd64-latest/", 404),
])
def test_lookup_errors(app: Flask, key: str, status: int) -> None:
    r = app.test_client().get("/tlog/lookup/" + key)
    assert r.status_code == status, r.get_data(as_text=True)
    assert r.get_data(as_text=True).count("\n") == 1


def test_verifier_key_and_get_command_on_pages(app: Flask, built: list[bytes]) -> None:
    key = app.extensions["gobuild"].tlog.verifier_key
    client = app.test_client()
    assert key in client.get("/").get_data(as_text=True)
    spec = BuildSpec.parse(SPECS[1], set(DEFAULT_TARGETS))
    result = app.extensions["gobuild"].store.result(spec)
    page = client.get(spec.result_link(result.sum)).get_data(as_text=True)
    assert (f"gobuild get -verifierkey {key} -url http://localhost/tlog -sum {result.sum} "
            f"-target linux/amd64 -goversion {GOVERSION} -stripped example.com/hello@v1.0.0") in page
    home = client.get("/").get_data(as_text=True)
    assert result.sum in home  # recent builds come from the log's tail


def test_restart_keeps_key_and_log(app: Flask, built: list[bytes], proxy: ModuleProxy, data_dir: Path) -> None:
    again = create_app(make_config(data_dir, proxy, listen="127.0.0.1:8123"))
    assert again.extensions["gobuild"].tlog.verifier_key == app.extensions["gobuild"].tlog.verifier_key
    assert again.test_client().get("/tlog/latest").get_data() == app.test_client().get("/tlog/latest").get_data()
    assert oct((data_dir / "tlog" / "signer.key").stat().st_mode & 0o777) == "0o600"
