"""Operating an instance, against the real server (waitress, real sockets): metrics and admin pages,
rate limits, the module allowlist, cache eviction, reload and clean shutdown."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from gobuild.spec import sum_from_digest
from tests.conftest import GOVERSION
from tests.modproxy import ModuleProxy, hello_module
from tests.realserver import free_port, real_server

TARGET = f"linux-amd64-{GOVERSION}"


@pytest.fixture(scope="module")
def proxy() -> Iterator[ModuleProxy]:
    with ModuleProxy() as p:
        p.add("example.com/hello", "v1.0.0", hello_module("example.com/hello", "v1.0.0"))
        p.add("example.com/hello", "v1.1.0", hello_module("example.com/hello", "v1.1.0", "hello again"))
        for minor in range(12):  # not main packages: each start is a quick, real build that fails
            p.add("example.com/lib", f"v1.0.{minor}", {"go.mod": "module example.com/lib\n\ngo 1.22\n",
                                                        "lib.go": "package lib\n"})
        for minor in (1, 2):  # compile errors: stored failures
            p.add("example.com/broken", f"v1.0.{minor}", {"go.mod": "module example.com/broken\n\ngo 1.22\n",
                                                           "main.go": "package main\n\nfunc main() { nope() }\n"})
        p.add("example.com/team/tool", "v1.0.0", hello_module("example.com/team/tool", "v1.0.0", "team"))
        yield p


def samples(admin: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample the admin listener exposes, parsed with prometheus_client's own parser."""
    text = requests.get(admin + "/metrics", timeout=10).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(all_: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    """The sum of the samples named name whose labels include labels."""
    return sum(v for (n, ls), v in all_.items() if n == name and set(labels.items()) <= set(ls))


def download(base: str, module: str, version: str, headers: dict[str, str] | None = None) -> requests.Response:
    name = module.rsplit("/", 1)[-1]
    return requests.get(f"{base}/{module}@{version}/{TARGET}/{name}-{version}-{GOVERSION}", headers=headers,
                        timeout=300)


def test_metrics_on_the_admin_listener_move_with_builds(tmp_path: Path, proxy: ModuleProxy,
                                                        server_cache: Path) -> None:
    admin = f"http://127.0.0.1:{free_port()}"
    with real_server(tmp_path, proxy.url, cache_dir=str(server_cache),
                     admin_listen=admin.removeprefix("http://")) as base:
        before = samples(admin)
        assert value(before, "gobuild_builds_started_total") == 0
        assert value(before, "gobuild_tlog_records") == 0
        r = download(base, "example.com/hello", "v1.0.0")
        assert r.status_code == 200, r.text
        assert download(base, "example.com/lib", "v1.0.0").status_code == 422
        after = samples(admin)
        assert value(after, "gobuild_builds_started_total", goos="linux", goversion=GOVERSION) == 2
        assert value(after, "gobuild_builds_succeeded_total", goarch="amd64") == 1
        assert value(after, "gobuild_builds_failed_total", reason="unprocessable") == 1
        assert value(after, "gobuild_build_duration_seconds_count") == 2
        assert value(after, "gobuild_tlog_records") == 1
        assert value(after, "gobuild_requests_waiting") == 0  # both requests waited, and are done
        proxy.delay("/example.com/hello/@v/v1.1.0.zip", 3)
        waiting = threading.Thread(target=download, args=(base, "example.com/hello", "v1.1.0"))
        waiting.start()
        deadline = time.monotonic() + 60
        while value(samples(admin), "gobuild_requests_waiting") != 1:
            assert time.monotonic() < deadline, "the waiting request is not counted"
            time.sleep(0.1)
        waiting.join()
        proxy.delay("/example.com/hello/@v/v1.1.0.zip", 0)
        assert value(after, "gobuild_tlog_append_duration_seconds_count") == 1
        assert value(after, "gobuild_goproxy_request_duration_seconds_count", kind="info") >= 1
        assert value(after, "gobuild_cache_bytes") > len(r.content)
        assert value(after, "gobuild_http_requests_total", route="result", status="200") == 1
        assert value(after, "gobuild_http_requests_total", route="build", status="307") >= 1
        # Never on the public port.
        assert requests.get(base + "/metrics", timeout=10).status_code == 404
        page = requests.get(admin + "/", timeout=10)
        assert page.status_code == 200 and 'href="/metrics"' in page.text
        assert "MiB of binaries" in page.text
        assert requests.get(admin + "/static/admin.css", timeout=10).status_code == 200


def test_admin_lists_and_clears_failures(tmp_path: Path, proxy: ModuleProxy, server_cache: Path) -> None:
    admin = f"http://127.0.0.1:{free_port()}"
    with real_server(tmp_path, proxy.url, cache_dir=str(server_cache),
                     admin_listen=admin.removeprefix("http://")) as base:
        for minor in (1, 2):
            assert download(base, "example.com/broken", f"v1.0.{minor}").status_code == 422
        listed = requests.get(admin + "/buildfailures", timeout=10).text.splitlines()
        assert len(listed) == 3 and all("example.com/broken@v1.0." in line for line in listed[1:]), listed
        page = requests.get(admin + "/", timeout=10).text
        assert "Clear all failures" in page and f"example.com/broken@v1.0.1/{TARGET}" in page
        spec = listed[1].split(":", 1)[0]
        r = requests.post(admin + "/clear", data={"spec": spec}, timeout=10, allow_redirects=False)
        assert r.status_code == 303
        assert len(requests.get(admin + "/buildfailures", timeout=10).text.splitlines()) == 2
        assert requests.post(admin + "/clear", data={"spec": spec}, timeout=10).status_code == 404
        requests.post(admin + "/clearall", timeout=10)
        assert len(requests.get(admin + "/buildfailures", timeout=10).text.splitlines()) == 1
        assert requests.get(admin + "/pending", timeout=10).text.startswith("# buildspec")


def test_the_eleventh_build_in_a_minute_is_refused(tmp_path: Path, proxy: ModuleProxy, server_cache: Path) -> None:
    with real_server(tmp_path, proxy.url, cache_dir=str(server_cache), trusted_proxies=["127.0.0.1/32"]) as base:
        def start(minor: int, client: str) -> requests.Response:
            return requests.post(f"{base}/example.com/lib@v1.0.{minor}/{TARGET}/start", timeout=60,
                                 headers={"X-Forwarded-For": client}, allow_redirects=False)

        for minor in range(10):
            assert start(minor, "192.0.2.1").status_code == 303
        refused = start(10, "192.0.2.1")
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) > 0
        assert "too many builds (for recent Go versions)" in refused.text
        refused = requests.post(f"{base}/example.com/lib@v1.0.10/{TARGET}/start", timeout=60,
                                headers={"X-Forwarded-For": "192.0.2.1", "Accept": "application/json"})
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "too-many-requests"  # not "error"
        assert start(10, "198.51.100.7").status_code == 303  # another client still builds
        # Joining a build, or a page, is not a start: never refused.
        assert start(10, "192.0.2.1").status_code == 303
        assert requests.get(f"{base}/example.com/lib@v1.0.11/{TARGET}/", timeout=60,
                            headers={"X-Forwarded-For": "192.0.2.1"}).status_code == 200


def test_an_allowlisted_instance_refuses_other_modules_everywhere(tmp_path: Path, proxy: ModuleProxy) -> None:
    with real_server(tmp_path, proxy.url, module_prefixes=["example.com/team"]) as base:
        before = len(proxy.requests)
        spec = f"example.com/hello@v1.0.0/{TARGET}/"
        for method, path in [("GET", "/example.com/hello"), ("GET", "/example.com/hello@latest"),
                             ("GET", "/" + spec), ("GET", f"/{spec}hello"), ("POST", f"/{spec}start"),
                             ("POST", f"/{spec}retry"), ("GET", f"/tlog/lookup/{spec}"),
                             ("GET", "/example.com/teamwork@v1.0.0")]:
            r = requests.request(method, base + path, timeout=30, allow_redirects=False)
            assert r.status_code == 403, (path, r.status_code, r.text)
            assert "this instance builds only modules under example.com/team" in r.text
        r = requests.get(base + "/example.com/hello", headers={"Accept": "application/json"}, timeout=30)
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"  # a stable code, not "error"
        assert len(proxy.requests) == before  # no work was done for them
        assert requests.get(base + "/example.com/team/tool@v1.0.0", timeout=60,
                            allow_redirects=False).status_code == 307


def sum_of(body: bytes) -> str:
    return sum_from_digest(hashlib.sha256(body).digest())


def test_eviction_keeps_the_cache_under_its_cap_and_rebuilds_to_the_logged_sum(
        tmp_path: Path, proxy: ModuleProxy, server_cache: Path) -> None:
    admin = f"http://127.0.0.1:{free_port()}"
    cap = 5 << 20  # one hello binary with its gzip fits (about 3.5 MB with go1.2x), two do not
    config = {"cache_dir": str(server_cache), "admin_listen": admin.removeprefix("http://"), "binary_cache_max_mb": 5}
    with real_server(tmp_path, proxy.url, **config) as base:
        first = download(base, "example.com/hello", "v1.0.0")
        assert first.status_code == 200 and b"hello" in first.content
        first_url, first_sum = first.url, sum_of(first.content)
        assert f"/{first_sum}/" in first_url
        assert value(samples(admin), "gobuild_cache_evictions_total") == 0
        second = download(base, "example.com/hello", "v1.1.0")
        assert second.status_code == 200
        time.sleep(1.1)  # Last-Modified has whole seconds: a download a second later must not move it
        again_second = requests.get(second.url, timeout=60)
        assert again_second.headers["Last-Modified"] == second.headers["Last-Modified"]
        after = samples(admin)
        assert value(after, "gobuild_cache_evictions_total") == 1
        assert 0 < value(after, "gobuild_cache_bytes") <= cap
        assert sum(p.stat().st_size for p in (tmp_path / "data" / "blobs").rglob("*") if p.is_file()) <= cap + (1 << 20)
        # The evicted first binary is rebuilt on request, to the same sum; now the second is evicted.
        again = requests.get(first_url, timeout=300)
        assert again.status_code == 200 and sum_of(again.content) == first_sum
        after = samples(admin)
        assert value(after, "gobuild_cache_evictions_total") == 2
        assert value(after, "gobuild_cache_bytes") <= cap
        assert value(after, "gobuild_recompile_mismatches_total") == 0
    # A rebuild that does not reproduce the logged sum is never served: pretend the log says otherwise.
    result_file = next(p for p in (tmp_path / "data" / "results").rglob("*.json") if "v1.1.0" in p.read_text())
    second_sum = sum_of(second.content)
    forged = sum_of(b"other bytes")
    result_file.write_text(result_file.read_text().replace(second_sum, forged))
    with real_server(tmp_path, proxy.url, **config) as base:
        path = urlsplit(second.url).path.replace(second_sum, forged)
        r = requests.get(base + path, timeout=300)
        assert r.status_code == 500
        assert f"the rebuild has sum {second_sum}, not the logged {forged}: it is not served" in r.text
        assert value(samples(admin), "gobuild_recompile_mismatches_total", goos="linux") == 1
        page = requests.get(admin + "/", timeout=10).text
        assert "did not reproduce the logged sum" in page and forged in page


def test_binaries_unused_past_the_age_limit_are_evicted_and_rebuilt(
        tmp_path: Path, proxy: ModuleProxy, server_cache: Path) -> None:
    admin = f"http://127.0.0.1:{free_port()}"
    with real_server(tmp_path, proxy.url, cache_dir=str(server_cache), admin_listen=admin.removeprefix("http://"),
                     binary_cache_max_age_hours=1 / 3600) as base:  # one second
        first = download(base, "example.com/hello", "v1.0.0")
        assert first.status_code == 200
        deadline = time.monotonic() + 30
        while value(samples(admin), "gobuild_cache_evictions_total") < 1:
            assert time.monotonic() < deadline, "not evicted"
            time.sleep(0.2)
        assert value(samples(admin), "gobuild_cache_bytes") == 0
        again = requests.get(first.url, timeout=300)
        assert again.status_code == 200 and sum_of(again.content) == sum_of(first.content)
        assert requests.post(admin + "/reload", timeout=10, allow_redirects=False).status_code == 303
