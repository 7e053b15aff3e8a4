"""The bill of materials against the real server: build info on the result page, CycloneDX JSON valid by the schema."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from gobuild import dirhash
from gobuild.buildinfo import BuildInfo, Module
from tests.conftest import GOROOT, GOVERSION
from tests.modproxy import ModuleProxy, make_zip
from tests.realserver import real_server

LIB_FILES = {"go.mod": b"module example.com/lib\n\ngo 1.22\n",
             "lib.go": b'package lib\n\nfunc Greeting() string { return "hello from lib" }\n'}


def go_sum_lines(path: str, version: str, files: dict[str, bytes]) -> str:
    """The go.sum lines of a module as the test proxy serves it."""
    zip_hash = dirhash.hash_zip(io.BytesIO(make_zip(path, version, files)))
    mod_hash = dirhash.hash1(["go.mod"], lambda _: io.BytesIO(files["go.mod"]))
    return f"{path} {version} {zip_hash}\n{path} {version}/go.mod {mod_hash}\n"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, server_cache: Path) -> Iterator[tuple[str, requests.Response]]:
    """example.com/app@v1.0.0 (which uses example.com/lib@v1.2.0) built by a real server: (result URL, binary)."""
    with ModuleProxy() as proxy, real_server(tmp_path_factory.mktemp("sbom"), proxy.url,
                                             cache_dir=str(server_cache)) as base:
        proxy.add("example.com/lib", "v1.2.0", LIB_FILES)
        proxy.add("example.com/app", "v1.0.0", {
            "go.mod": "module example.com/app\n\ngo 1.22\n\nrequire example.com/lib v1.2.0\n",
            "go.sum": go_sum_lines("example.com/lib", "v1.2.0", LIB_FILES),
            "main.go": 'package main\n\nimport "example.com/lib"\n\nfunc main() { println(lib.Greeting()) }\n'})
        r = requests.get(f"{base}/example.com/app@v1.0.0/linux-amd64-{GOVERSION}/app-v1.0.0-{GOVERSION}",
                         headers={"Accept-Encoding": "identity"}, timeout=300)
        assert r.status_code == 200, r.text
        yield r.url.rsplit("/", 1)[0] + "/", r


def test_result_page_shows_the_build_info(built: tuple[str, requests.Response]) -> None:
    result_url, _ = built
    page = requests.get(result_url, timeout=30).text
    lib_sum = go_sum_lines("example.com/lib", "v1.2.0", LIB_FILES).split()[2]
    assert "<h2>Bill of materials</h2>" in page
    assert f"<tr><td>example.com/lib</td><td>v1.2.0</td><td><code>{lib_sum}</code></td></tr>" in page
    assert '<a href="sbom.cdx.json">as CycloneDX JSON</a>' in page
    assert f"<td>{GOVERSION} <span" in page and "<code>GOARCH</code></td><td><code>amd64</code>" in page


def test_buildinfo_is_what_go_version_m_prints(built: tuple[str, requests.Response], tmp_path: Path) -> None:
    result_url, binary = built
    (tmp_path / "app").write_bytes(binary.content)
    direct = subprocess.run([f"{GOROOT}/bin/go", "version", "-m", str(tmp_path / "app")], capture_output=True,
                            text=True, check=True).stdout
    r = requests.get(result_url + "buildinfo", timeout=30)
    assert r.status_code == 200 and r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert r.text == direct.replace(f"{tmp_path / 'app'}: ", "", 1)


def test_sbom_is_valid_cyclonedx_and_names_what_was_built(built: tuple[str, requests.Response]) -> None:
    result_url, binary = built
    r = requests.get(result_url + "sbom.cdx.json", timeout=30)
    assert r.headers["Content-Type"] == "application/vnd.cyclonedx+json"
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(r.text) is None
    doc = json.loads(r.text)
    main = doc["metadata"]["component"]
    assert (main["type"], main["name"], main["version"]) == ("application", "example.com/app", "v1.0.0")
    assert main["purl"] == "pkg:golang/example.com/app@v1.0.0"
    assert main["hashes"] == [{"alg": "SHA-256", "content": hashlib.sha256(binary.content).hexdigest()}]
    props = {p["name"]: p["value"] for p in main["properties"]}
    assert props["gobuild:sum"] == result_url.rstrip("/").rsplit("/", 1)[1]
    assert props["gobuild:goversion"] == GOVERSION and props["gobuild:build:CGO_ENABLED"] == "0"
    [lib] = doc["components"]
    h1 = go_sum_lines("example.com/lib", "v1.2.0", LIB_FILES).split()[2]
    assert lib["purl"] == "pkg:golang/example.com/lib@v1.2.0"
    assert lib["hashes"] == [{"alg": "SHA-256", "content": base64.b64decode(h1[3:]).hex()}]
    assert lib["properties"] == [{"name": "gobuild:h1", "value": h1}]
    deps = {d["ref"]: d.get("dependsOn", []) for d in doc["dependencies"]}
    assert deps[main["bom-ref"]] == ["example.com/lib@v1.2.0"]
    # The same document every time: it is immutable like the rest of the result URL.
    assert requests.get(result_url + "sbom.cdx.json", timeout=30).text == r.text
    # And the validator is not a rubber stamp.
    doc["metadata"]["component"]["hashes"][0]["content"] = "not hex"
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(doc)) is not None


def test_parse_replacements_and_quoted_settings() -> None:
    info = BuildInfo.parse(
        "/tmp/x: go1.26.8\n\tpath\texample.com/app\n\tmod\texample.com/app\tv1.0.0\th1:AAAA\n"
        "\tdep\texample.com/a\tv1.0.0\th1:BBBB\n\t=>\texample.com/fork\tv1.0.1\th1:CCCC\n"
        "\tdep\texample.com/b\tv0.1.0\n\tbuild\t-ldflags=\"-buildid= -s\"\n\tbuild\tGOOS=linux\n")
    assert info.go_version == "go1.26.8" and info.path == "example.com/app"
    assert info.main == Module("example.com/app", "v1.0.0", "h1:AAAA")
    assert info.deps == (Module("example.com/a", "v1.0.0", "h1:BBBB", Module("example.com/fork", "v1.0.1", "h1:CCCC")),
                         Module("example.com/b", "v0.1.0"))
    assert info.settings == (("-ldflags", '"-buildid= -s"'), ("GOOS", "linux"))
    assert info.text.startswith("go1.26.8\n\tpath\t")
