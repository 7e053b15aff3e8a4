"""The JSON twins against the real server: Accept: application/json on the page URLs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from gobuild.spec import sum_of
from gobuild.tlog import note
from tests.conftest import GOVERSION
from tests.modproxy import ModuleProxy, hello_module
from tests.realserver import real_server

JSON = {"Accept": "application/json"}
HELLO = f"/example.com/hello@v1.0.0/linux-amd64-{GOVERSION}/"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, server_cache: Path) -> Iterator[str]:
    with ModuleProxy() as proxy, real_server(tmp_path_factory.mktemp("api"), proxy.url,
                                             cache_dir=str(server_cache)) as base:
        proxy.add("example.com/hello", "v1.0.0", hello_module("example.com/hello", "v1.0.0"))
        proxy.add("example.com/multi", "v0.3.0", {
            "go.mod": "module example.com/multi\n\ngo 1.22\n",
            "cmd/alpha/main.go": "package main\n\nfunc main() {}\n",
            "cmd/beta/main.go": "package main\n\nfunc main() {}\n"})
        proxy.add("example.com/lib", "v1.0.0", {"go.mod": "module example.com/lib\n\ngo 1.22\n",
                                                "lib.go": "package lib\n"})
        proxy.add("example.com/broken", "v1.0.0", {"go.mod": "module example.com/broken\n\ngo 1.22\n",
                                                   "main.go": "package main\n\nfunc main() { undefined() }\n"})
        proxy.fail("/example.com/forbidden/", 403)  # a proxy that will not serve it
        yield base


def get(base: str, path: str, **kw: object) -> requests.Response:
    r = requests.get(base + path, headers=JSON, timeout=300, **kw)  # type: ignore[arg-type]
    assert r.headers["Content-Type"] == "application/json", (r.status_code, r.text[:300])
    return r


@pytest.fixture(scope="module")
def built(server: str) -> dict[str, object]:
    """Start the hello build as a program would, poll its status until it is done, return its status."""
    pending = get(server, HELLO).json()
    assert (pending["state"], pending["start_url"]) == ("pending", HELLO + "start")
    r = requests.post(server + HELLO + "start", headers=JSON, timeout=30)
    assert r.status_code == 200 and r.json()["spec"] == HELLO[1:]  # 303 to the status, in JSON
    for _ in range(600):
        status = get(server, HELLO).json()
        assert status["state"] in ("queued", "running", "verifying", "success"), status
        if status["state"] == "success":
            return status  # type: ignore[no-any-return]
        time.sleep(0.5)
    raise AssertionError("build did not finish")


def test_result_has_sum_size_record_and_file_urls(server: str, built: dict[str, object]) -> None:
    res = built["result"]
    assert isinstance(res, dict)
    r = get(server, res["result_url"])
    assert r.json() == res and r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert "Accept" in r.headers["Vary"]
    assert (res["module"], res["version"], res["goos"], res["goversion"]) == ("example.com/hello", "v1.0.0",
                                                                              "linux", GOVERSION)
    assert res["record_number"] == 0 and res["result_url"] == f"{HELLO}{res['sum']}/"
    binary = requests.get(server + res["files"]["binary"], timeout=30).content
    assert sum_of(binary) == res["sum"] and len(binary) == res["size"]
    for name in ("gz", "log", "record", "proof", "buildinfo", "sbom"):
        assert requests.get(server + res["files"][name], timeout=60).status_code == 200, name
    # Without asking for JSON, the same URL is the HTML page.
    html = requests.get(server + res["result_url"], timeout=30)
    assert html.headers["Content-Type"].startswith("text/html") and "Accept" in html.headers["Vary"]


def test_home_has_recent_builds_go_versions_and_targets(server: str, built: dict[str, object]) -> None:
    doc = get(server, "/").json()
    res = built["result"]
    assert isinstance(res, dict)
    assert doc["recent"][0]["result_url"] == res["result_url"] and doc["recent"][0]["sum"] == res["sum"]
    assert doc["goversions"]["latest"] == GOVERSION and GOVERSION in doc["goversions"]["installed"]
    assert "linux/amd64" in doc["targets"] and "windows/arm64" in doc["targets"]
    assert note.Verifier.parse(doc["verifier_key"]).name == "127.0.0.1" and doc["tlog_url"] == "/tlog"
    assert len(get(server, "/?count=1").json()["recent"]) == 1
    bad = get(server, "/?count=1000")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad-request"


def test_module_commands(server: str) -> None:
    doc = get(server, "/example.com/multi").json()
    assert doc["module"] == "example.com/multi" and doc["version"] == "v0.3.0"
    assert [(c["dir"], c["name"], c["install_url"]) for c in doc["commands"]] == [
        ("/cmd/alpha", "alpha", "/example.com/multi@v0.3.0/cmd/alpha/install.sh"),
        ("/cmd/beta", "beta", "/example.com/multi@v0.3.0/cmd/beta/install.sh")]
    assert doc["commands"][0]["build_url"].startswith("/example.com/multi@v0.3.0/cmd/alpha/")
    assert get(server, "/example.com/hello@latest").json()["version"] == "v1.0.0"


def test_latest_redirects_to_the_canonical_status(server: str) -> None:
    r = requests.get(server + "/example.com/hello@latest/linux-arm64-latest/", headers=JSON, allow_redirects=False,
                     timeout=60)
    assert r.status_code == 307
    assert r.headers["Location"] == f"/example.com/hello@v1.0.0/linux-arm64-{GOVERSION}/"


def test_failed_build_status(server: str) -> None:
    path = f"/example.com/broken@v1.0.0/linux-amd64-{GOVERSION}/"
    assert requests.get(server + path + "broken-v1.0.0-" + GOVERSION, timeout=300).status_code == 422
    r = get(server, path)
    assert r.status_code == 422
    doc = r.json()
    assert doc["state"] == "failed" and doc["error"]["code"] == "build-failed" and doc["error"]["status"] == 422
    assert doc["log_url"] == path + "log" and doc["retry_url"] == path + "retry"


def test_a_build_that_cannot_work_as_asked_shows_its_error_until_started_again(server: str) -> None:
    # Not a main package: a 422 that is not stored (nothing to retry), but the page and the status must say so
    # instead of looking as if nothing had been built.
    path = f"/example.com/lib@v1.0.0/linux-amd64-{GOVERSION}/"
    assert requests.post(server + path + "start", allow_redirects=False, timeout=60).status_code == 303
    deadline = time.monotonic() + 120
    while (r := get(server, path)).json()["state"] in ("queued", "running", "verifying"):
        assert time.monotonic() < deadline, r.json()
        time.sleep(0.2)
    doc = r.json()
    assert r.status_code == 422 and doc["state"] == "failed", doc
    assert doc["error"]["status"] == 422 and doc["error"]["code"] == "unprocessable" and doc["error"]["message"]
    assert doc["start_url"] == path + "start" and "retry_url" not in doc
    page = requests.get(server + path, timeout=60)
    assert page.status_code == 422 and "status-failed" in page.text, page.text[:500]
    assert '<form method="post" action="start">' in page.text  # a way to start it again
    assert doc["error"]["message"].split(":")[0] in page.text


@pytest.mark.parametrize("method, path, status, code", [
    ("GET", "/example.com/nothere", 404, "not-found"),
    ("GET", "/nodot/x", 404, "bad-path"),
    ("GET", f"/example.com/hello@v1.0.0/plan9-mips-{GOVERSION}/", 404, "bad-path"),
    ("GET", f"{HELLO}0AAAAAAAAAAAAAAAAAAAAAAAAAAA/", 404, "not-found"),
    ("GET", "/example.com/hello@v1.0.0/linux-amd64-go1.12/", 422, "unprocessable"),
    ("POST", "/example.com/hello", 405, "method-not-allowed"),
    ("GET", "/example.com/hello@v9.9.9/install.sh", 404, "not-found"),
    ("GET", "/example.com/lib", 422, "unprocessable"),
    ("GET", "/example.com/forbidden", 502, "proxy-refused"),
])
def test_errors_are_json_with_the_same_status_and_a_stable_code(server: str, built: dict[str, object], method: str,
                                                                path: str, status: int, code: str) -> None:
    r = requests.request(method, server + path, headers=JSON, timeout=60)
    assert r.headers["Content-Type"] == "application/json"
    assert r.status_code == status and r.json()["error"]["status"] == status
    assert r.json()["error"]["code"] == code and r.json()["error"]["message"]
    plain = requests.request(method, server + path, timeout=60)
    assert plain.status_code == status and not plain.headers["Content-Type"].startswith("application/json")
