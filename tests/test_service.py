"""End to end: real builds through the web app with the local Go and a module proxy on 127.0.0.1."""

from __future__ import annotations

import gzip
import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import EnvironBuilder

from gobuild.spec import BuildSpec, sum_from_digest
from gobuild.targets import DEFAULT_TARGETS
from gobuild.web import create_app
from tests.conftest import GOVERSION, make_config
from tests.gohelp import direct_sum
from tests.modproxy import ModuleProxy, hello_module

MAIN = 'package main\n\nimport "fmt"\n\nfunc main() {{ fmt.Println("{}") }}\n'
GOMOD = "module {}\n\ngo 1.22\n"


def add_modules(proxy: ModuleProxy) -> None:
    """The modules the tests build: each exercises one behaviour of REFERENCE section 3."""
    proxy.add("example.com/hello", "v1.0.0", hello_module("example.com/hello", "v1.0.0"))
    proxy.add("example.com/hello", "v1.1.0", hello_module("example.com/hello", "v1.1.0", "hello again"))
    proxy.add("example.com/multi", "v0.3.0", {
        "go.mod": GOMOD.format("example.com/multi"), "lib.go": "package multi\n",
        "cmd/alpha/main.go": MAIN.format("alpha"), "cmd/beta/main.go": MAIN.format("beta"),
        "internal/gen/gen.go": "//go:build ignore\n\npackage main\n\nfunc main() {}\n",
    })
    proxy.add("example.com/lib", "v1.0.0", {"go.mod": GOMOD.format("example.com/lib"), "lib.go": "package lib\n"})
    proxy.add("example.com/tool/v2", "v2.0.0", {"go.mod": GOMOD.format("example.com/tool/v2"),
                                               "main.go": MAIN.format("v2")})
    proxy.add("example.com/MixedCase/Tool", "v1.0.0", {"go.mod": GOMOD.format("example.com/MixedCase/Tool"),
                                                      "main.go": MAIN.format("mixed")})
    proxy.add("example.com/replaced", "v1.0.0", {
        "go.mod": GOMOD.format("example.com/replaced") + "\nreplace example.com/other => ./other\n",
        "main.go": MAIN.format("r")})
    cgo_main = 'package main\n\n// int f() { return 1; }\nimport "C"\n\nfunc main() { println(C.f()) }\n'
    proxy.add("example.com/cgo", "v1.0.0", {"go.mod": GOMOD.format("example.com/cgo"), "main.go": cgo_main})
    # go-sqlite3's shape: v2 tags from before modules, and a main package behind a build tag.
    proxy.add("example.com/sqlite", "v1.14.0", {"go.mod": GOMOD.format("example.com/sqlite"),
                                               "main.go": MAIN.format("s"),
                                               "upgrade/upgrade.go": "// +build upgrade\n\n" + MAIN.format("u")})
    proxy.add("example.com/sqlite", "v2.0.3+incompatible", {"main.go": MAIN.format("old")})
    proxy.add("example.com/linuxtool", "v1.0.0", {"go.mod": GOMOD.format("example.com/linuxtool"),
                                                 "cmd/a/main_linux.go": MAIN.format("a"),
                                                 "cmd/b/main.go": MAIN.format("b")})
    proxy.add("example.com/broken", "v1.0.0", {"go.mod": GOMOD.format("example.com/broken"),
                                              "main.go": "package main\n\nfunc main() {\n\tx :=\n}\n"})
    proxy.add("example.com/newgo", "v1.0.0", {"go.mod": "module example.com/newgo\n\ngo 1.99\n",
                                             "main.go": MAIN.format("future")})


@pytest.fixture(scope="module")
def proxy() -> Iterator[ModuleProxy]:
    with ModuleProxy() as p:
        add_modules(p)
        yield p


@pytest.fixture(scope="module")
def app(proxy: ModuleProxy, tmp_path_factory: pytest.TempPathFactory) -> Flask:
    # A build cache of its own, not the run's shared one: in full runs, after other files' servers
    # (sandboxed, unsandboxed, in a user namespace) had written to the shared cache, a build here
    # failed with go's "could not import fmt (open : no such file or directory)"; see the README.
    data, cache = tmp_path_factory.mktemp("data"), tmp_path_factory.mktemp("service-cache")
    return create_app(make_config(data, proxy, cache_dir=str(cache)))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(scope="module")
def direct_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Caches of the direct builds: separate from the server's, so nothing is shared with it."""
    return tmp_path_factory.mktemp("direct")


def spec_of(s: str) -> BuildSpec:
    return BuildSpec.parse(s, set(DEFAULT_TARGETS))


def download(client: FlaskClient, path: str) -> tuple[str, bytes]:
    """Request a binary the way `curl -fL` does; return the result URL and the body."""
    r = client.get(path)
    assert r.status_code == 307, (r.status_code, r.get_data(as_text=True))
    location = r.headers["Location"]
    r = client.get(location)
    assert r.status_code == 200, r.get_data(as_text=True)
    body = r.get_data()
    r.close()
    return location, body


def sum_in_url(location: str) -> str:
    return location.rstrip("/").split("/")[-2]


def check_build(client: FlaskClient, proxy: ModuleProxy, direct_cache: Path, spec: BuildSpec) -> str:
    """Download spec's binary; its sum must be in the URL and equal a direct `go install`."""
    location, body = download(client, spec.link() + spec.download_filename())
    got = sum_from_digest(hashlib.sha256(body).digest())
    assert sum_in_url(location) == got
    assert location == spec.result_link(got) + spec.download_filename()
    assert got == direct_sum(spec, proxy.url, direct_cache)
    return got


def test_command_at_module_root_matches_direct_go_install(client: FlaskClient, proxy: ModuleProxy,
                                                         direct_cache: Path) -> None:
    spec = spec_of(f"example.com/hello@v1.0.0/linux-amd64-{GOVERSION}/")
    sum_ = check_build(client, proxy, direct_cache, spec)
    # Everything under the result URL is now immutable and cacheable.
    for page in ("", "record", "log", spec.download_filename(), spec.download_filename() + ".gz"):
        r = client.get(spec.result_link(sum_) + page)
        assert r.status_code == 200, page
        if page:
            assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        r.close()
    record = client.get(spec.result_link(sum_) + "record").get_data(as_text=True)
    assert record.startswith(f"example.com/hello v1.0.0 / linux amd64 {GOVERSION} ") and record.endswith(f" {sum_} \n")
    log = client.get(spec.result_link(sum_) + "log").get_data(as_text=True)
    assert "go install" in log and sum_ in log
    # The build URL now redirects to the result, for every page.
    r = client.get(spec.link() + "record")
    assert r.status_code == 307 and r.headers["Location"] == spec.result_link(sum_) + "record"


def test_downloads_negotiate_gzip_and_stream_from_disk(client: FlaskClient) -> None:
    spec = spec_of(f"example.com/hello@v1.0.0/linux-amd64-{GOVERSION}/")
    location, plain = download(client, spec.link() + spec.download_filename())
    r = client.get(location, headers={"Accept-Encoding": "gzip"})
    assert r.headers["Content-Encoding"] == "gzip"
    assert r.headers["Content-Disposition"] == f"attachment; filename={spec.download_filename()}"
    assert gzip.decompress(r.get_data()) == plain
    assert int(r.headers["Content-Length"]) == len(r.get_data())
    r.close()
    for refusal in ("gzip;q=0", "br", "identity", "x, gzip;q=0"):
        r = client.get(location, headers={"Accept-Encoding": refusal})
        assert "Content-Encoding" not in r.headers and r.get_data() == plain, refusal
        r.close()
    r = client.get(location, headers={"Accept-Encoding": "gzip;q=1.0"})  # the original crashed here
    assert r.headers["Content-Encoding"] == "gzip"
    r.close()
    r = client.get(location + ".gz")
    assert r.headers["Content-Type"] == "application/gzip" and gzip.decompress(r.get_data()) == plain
    r.close()
    r = client.get(location, headers={"Range": "bytes=0-3"})
    assert r.status_code == 206 and r.get_data() == plain[:4]
    r.close()


def test_binary_goes_to_the_servers_file_wrapper(app: Flask, client: FlaskClient) -> None:
    """Downloads hand the open file to wsgi.file_wrapper (zero-copy in waitress), never read whole."""
    spec = spec_of(f"example.com/hello@v1.0.0/linux-amd64-{GOVERSION}/")
    location, _plain = download(client, spec.link() + spec.download_filename())
    wrapped: list[object] = []

    class FileWrapper:
        def __init__(self, f: object, block_size: int = 8192) -> None:
            wrapped.append(f)
            self.f = f

        def __iter__(self) -> Iterator[bytes]:
            return iter(())

        def close(self) -> None:
            self.f.close()  # type: ignore[attr-defined]

    env = EnvironBuilder(path=location).get_environ()
    env["wsgi.file_wrapper"] = FileWrapper
    body = app.wsgi_app(env, lambda status, headers: None)
    assert isinstance(body, FileWrapper) and len(wrapped) == 1
    body.close()


def test_two_commands_under_cmd(client: FlaskClient, proxy: ModuleProxy, direct_cache: Path) -> None:
    r = client.get("/example.com/multi", headers={"User-Agent": "curl/8"})
    assert r.status_code == 200
    page = r.get_data(as_text=True)
    assert f"/example.com/multi@v0.3.0/cmd/alpha/linux-amd64-{GOVERSION}/" in page
    assert f"/example.com/multi@v0.3.0/cmd/beta/linux-amd64-{GOVERSION}/" in page
    assert "internal/gen" not in page  # a //go:build ignore helper is no command
    for name in ("alpha", "beta"):
        spec = spec_of(f"example.com/multi@v0.3.0/cmd/{name}/linux-amd64-{GOVERSION}/")
        check_build(client, proxy, direct_cache, spec)


def test_module_page_with_one_command_redirects(client: FlaskClient) -> None:
    r = client.get("/example.com/hello", headers={"User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"})
    assert r.status_code == 307
    assert r.headers["Location"] == f"/example.com/hello@v1.1.0/windows-amd64-{GOVERSION}/"
    r = client.get("/example.com/hello/")
    assert r.status_code == 307 and r.headers["Location"] == "/example.com/hello"
    r = client.get("/example.com/hello@v1.0.0", headers={"User-Agent": "curl/8"})
    assert r.headers["Location"] == f"/example.com/hello@v1.0.0/linux-amd64-{GOVERSION}/"


def test_module_page_follows_go_latest_and_build_constraints(client: FlaskClient) -> None:
    r = client.get("/example.com/sqlite", headers={"User-Agent": "curl/8"})
    assert r.status_code == 307, r.get_data(as_text=True)  # upgrade/ is no command: one command left
    assert r.headers["Location"] == f"/example.com/sqlite@v1.14.0/linux-amd64-{GOVERSION}/"


def test_module_page_runs_go_once_per_version(client: FlaskClient, app: Flask,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    compiler = app.extensions["gobuild"].builder.compiler
    calls: list[str] = []
    real = compiler.download_module
    monkeypatch.setattr(compiler, "download_module", lambda *a, **kw: calls.append(a[2]) or real(*a, **kw))
    for _ in range(3):
        assert client.get("/example.com/tool/v2", headers={"User-Agent": "curl/8"}).status_code == 307
    assert calls == ["example.com/tool/v2"]


def test_commands_are_listed_for_the_guessed_target(client: FlaskClient) -> None:
    r = client.get("/example.com/linuxtool", headers={"User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"})
    assert r.status_code == 307  # cmd/a is linux only
    assert r.headers["Location"] == f"/example.com/linuxtool@v1.0.0/cmd/b/windows-amd64-{GOVERSION}/"
    page = client.get("/example.com/linuxtool", headers={"User-Agent": "curl/8"}).get_data(as_text=True)
    assert "/cmd/a/linux-amd64-" in page and "/cmd/b/linux-amd64-" in page


def test_package_path_goes_to_the_module_that_holds_it(client: FlaskClient) -> None:
    for path in ("/example.com/multi/cmd/alpha", "/example.com/multi/cmd/alpha@v0.3.0"):
        r = client.get(path, headers={"User-Agent": "curl/8"})
        assert r.status_code == 307, (path, r.get_data(as_text=True))
        assert r.headers["Location"] == f"/example.com/multi@v0.3.0/cmd/alpha/linux-amd64-{GOVERSION}/"
    r = client.get("/example.com/multi/internal/gen")
    assert r.status_code == 422 and "not a command" in r.get_data(as_text=True)
    assert client.get("/example.com/multi/nope/deeper").status_code == 422  # the module exists, the package not
    assert client.get("/example.org/nothing/here").status_code == 404


def test_json_twin_of_a_package_path_answers_as_the_page(client: FlaskClient) -> None:
    """The JSON twin resolves a package path like the page does (it answered 404 where the page said 422)."""
    json_ = {"User-Agent": "curl/8", "Accept": "application/json"}
    r = client.get("/example.com/multi/cmd/alpha", headers=json_)
    assert r.status_code == 307
    assert r.headers["Location"] == f"/example.com/multi@v0.3.0/cmd/alpha/linux-amd64-{GOVERSION}/"
    for path in ("/example.com/multi/internal/gen", "/example.com/multi/nope/deeper"):
        r = client.get(path, headers=json_)
        assert r.status_code == client.get(path).status_code == 422, (path, r.get_data(as_text=True))
        assert r.json is not None and r.json["error"]["code"] == "unprocessable"
    r = client.get("/example.org/nothing/here", headers=json_)
    assert r.status_code == 404 and r.json is not None and r.json["error"]["code"] == "not-found"


def test_latest_versions_resolve_by_redirect(client: FlaskClient) -> None:
    r = client.get("/example.com/hello@latest/linux-amd64-latest/dl")
    assert r.status_code == 307
    assert r.headers["Location"] == f"/example.com/hello@v1.1.0/linux-amd64-{GOVERSION}/dl"
    r = client.get("/example.com/hello@latest/linux-amd64-latest/hello-latest-latest")  # the README's form
    assert r.status_code == 307
    assert r.headers["Location"] == f"/example.com/hello@v1.1.0/linux-amd64-{GOVERSION}/hello-v1.1.0-{GOVERSION}"


def test_library_only_module_is_a_clear_error(client: FlaskClient) -> None:
    r = client.get("/example.com/lib")
    assert r.status_code == 422 and "no main packages" in r.get_data(as_text=True)
    r = client.get(f"/example.com/lib@v1.0.0/linux-amd64-{GOVERSION}/lib-v1.0.0-{GOVERSION}")
    assert r.status_code == 422
    assert "package main does not exist" in r.get_data(as_text=True)


def test_v2_module_binary_is_named_like_go_install_names_it(client: FlaskClient, proxy: ModuleProxy,
                                                          direct_cache: Path) -> None:
    spec = spec_of(f"example.com/tool/v2@v2.0.0/linux-amd64-{GOVERSION}/")
    assert spec.download_filename() == f"tool-v2.0.0-{GOVERSION}"
    sum_ = check_build(client, proxy, direct_cache, spec)
    # The original's name still works, for its clients.
    r = client.get(spec.result_link(sum_) + spec.download_filename(legacy=True))
    assert r.status_code == 301 and r.headers["Location"].endswith(spec.download_filename())


def test_broken_port_builds_and_is_marked(app: Flask, client: FlaskClient, proxy: ModuleProxy,
                                          direct_cache: Path) -> None:
    # freebsd/riscv64 is marked broken in go1.26's `go tool dist list -broken`, yet go install builds it.
    app.extensions["gobuild"].toolchains.targets_for(GOVERSION)
    check_build(client, proxy, direct_cache, spec_of(f"example.com/hello@v1.0.0/freebsd-riscv64-{GOVERSION}/"))
    r = client.get(f"/example.com/hello@v1.0.0/linux-amd64-{GOVERSION}/", follow_redirects=True)  # built: result page
    page = r.get_data(as_text=True)
    link = page.index(f"/example.com/hello@v1.0.0/freebsd-riscv64-{GOVERSION}/")
    assert "broken" in page[link:link + 400]
    assert "unsupported" not in page  # the installed Go builds: it is offered like the supported ones


def test_module_path_with_upper_case(client: FlaskClient, proxy: ModuleProxy, direct_cache: Path) -> None:
    check_build(client, proxy, direct_cache, spec_of(f"example.com/MixedCase/Tool@v1.0.0/linux-amd64-{GOVERSION}/"))


def test_stripped_variant(client: FlaskClient, proxy: ModuleProxy, direct_cache: Path) -> None:
    plain = check_build(client, proxy, direct_cache, spec_of(f"example.com/hello@v1.0.0/linux-amd64-{GOVERSION}/"))
    stripped = check_build(client, proxy, direct_cache,
                           spec_of(f"example.com/hello@v1.0.0/linux-amd64-{GOVERSION}-stripped/"))
    assert plain != stripped


def test_cross_compiled_windows_arm64(client: FlaskClient, proxy: ModuleProxy, direct_cache: Path) -> None:
    spec = spec_of(f"example.com/hello@v1.0.0/windows-arm64-{GOVERSION}/")
    assert spec.download_filename() == f"hello-v1.0.0-{GOVERSION}.exe"
    check_build(client, proxy, direct_cache, spec)


@pytest.mark.parametrize("module, reason", [
    ("example.com/replaced", "go.mod has replace directives"),
    ("example.com/cgo", "cgo"),
    ("example.com/newgo", "requires newer go version"),
])
def test_build_failures_are_classified_stored_and_retried(client: FlaskClient, app: Flask, module: str,
                                                          reason: str, caplog: pytest.LogCaptureFixture) -> None:
    spec = spec_of(f"{module}@v1.0.0/linux-amd64-{GOVERSION}/")
    r = client.get(spec.link() + spec.download_filename())
    assert r.status_code == 422, r.get_data(as_text=True)
    assert f"build failed ({reason})" in r.get_data(as_text=True)
    store = app.extensions["gobuild"].store
    assert store.failure(spec).reason == reason
    page = client.get(spec.link(), headers={"Accept": "text/html"})
    assert page.status_code == 422 and reason in page.get_data(as_text=True) and "Retry" in page.get_data(as_text=True)
    assert client.get(spec.link() + "log").status_code == 200
    r = client.post(spec.link() + "retry")
    assert r.status_code == 303 and r.headers["Location"] == spec.link()
    assert store.failure(spec) is None
    assert any(f"build of {spec} failed" in m and reason in m for m in caplog.messages), caplog.messages
    r = client.get(spec.link() + "record")  # builds again, fails again, stored again
    assert r.status_code == 422 and store.failure(spec).reason == reason


def test_unclassified_failure_shows_gos_words_and_the_page(client: FlaskClient) -> None:
    spec = spec_of(f"example.com/broken@v1.0.0/linux-amd64-{GOVERSION}/")
    for attempt in ("build", "stored"):
        text = client.get(spec.link() + spec.download_filename()).get_data(as_text=True)
        assert "syntax error" in text and "unknown" not in text, (attempt, text)
        assert f"details and log: http://localhost{spec.link()}" in text, (attempt, text)
    page = client.get(spec.link(), headers={"Accept": "text/html"}).get_data(as_text=True)
    assert "syntax error" in page and "(unknown)" not in page


def test_unknown_version_is_not_found(client: FlaskClient) -> None:
    r = client.get(f"/example.com/hello@v9.9.9/linux-amd64-{GOVERSION}/hello-v9.9.9-{GOVERSION}")
    assert r.status_code == 404
    assert client.get("/example.com/nonexistent").status_code == 404


def test_unknown_goversion_is_unprocessable(client: FlaskClient) -> None:
    r = client.get("/example.com/hello@v1.0.0/linux-amd64-go1.99.0/hello-v1.0.0-go1.99.0")
    assert r.status_code == 422 and "go1.99.0" in r.get_data(as_text=True)


def test_proxy_failure_is_service_unavailable(client: FlaskClient, proxy: ModuleProxy,
                                              caplog: pytest.LogCaptureFixture) -> None:
    proxy.fail("/example.com/hello/", 500)
    try:
        r = client.get(f"/example.com/hello@v1.0.1/linux-amd64-{GOVERSION}/hello-v1.0.1-{GOVERSION}")
        assert r.status_code == 503, r.get_data(as_text=True)
        r = client.get("/example.com/hello")
        assert r.status_code == 503
        # The operator sees why in the server log.
        assert any("answered 503" in m and "500 Internal Server Error" in m for m in caplog.messages), caplog.messages
    finally:
        proxy.fail("/example.com/hello/", 0)


def test_concurrent_requests_run_one_build(app: Flask, proxy: ModuleProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    proxy.add("example.com/busy", "v1.0.0", hello_module("example.com/busy", "v1.0.0", "busy"))
    builder = app.extensions["gobuild"].builder
    calls: list[str] = []
    real = builder._build
    monkeypatch.setattr(builder, "_build", lambda spec, out: calls.append(str(spec)) or real(spec, out))
    monkeypatch.setattr(app.extensions["gobuild"].waits, "limit", 20)  # all 20 may wait (test_limits: the cap)
    path = f"/example.com/busy@v1.0.0/linux-amd64-{GOVERSION}/busy-v1.0.0-{GOVERSION}"
    locations: list[str] = []

    def fetch() -> None:
        r = app.test_client().get(path)
        locations.append(f"{r.status_code} {r.headers.get('Location')}")

    threads = [threading.Thread(target=fetch) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(calls) == 1
    assert len(locations) == 20 and len(set(locations)) == 1 and locations[0].startswith("307 ")


@pytest.mark.parametrize("path", [
    "/example.com/hello@v1.0.0/../../etc/passwd",
    "/example.com/hello@v1.0.0/linux-amd64-go1.26.8",  # missing slash
    "/example.com/hello@v1.0.0/plan10-amd64-go1.26.8/",
    "/example.com/hello@v1.0.0/linux-amd64-go1.26.8-fat/",
    "/example.com/hello@v1.0.0/linux-amd64-go1.26.8/0notasum/hello",
    "/example.com/hello@v1.0.0/linux-amd64-go1.26.8/nosuchpage",
    "/example.com/hello@v1.0.0/linux-amd64-go1.26.8/0N7e6zxGtHCObqNBDA_mXKv7-A9M/retry",
    "/example.com/hello@v1.0.0/linux-amd64-bad/",
    "/example.com/" + "x" * 3000,
    "/example.com/%ff%fe@v1.0.0/linux-amd64-go1.26.8/",
    "/example.com/a%00b@v1.0.0/linux-amd64-go1.26.8/",
    "/nodot/x@v1.0.0/linux-amd64-go1.26.8/",
    "/example.com/-bad@v1.0.0/linux-amd64-go1.26.8/",
    "/example.com/hello@",
])
def test_malformed_urls_get_a_one_line_4xx(client: FlaskClient, path: str) -> None:
    r = client.get(path)
    if r.status_code == 301:  # //, /./ and /../ are cleaned first, then judged
        r = client.get(r.headers["Location"])
    body = r.get_data(as_text=True)
    assert 400 <= r.status_code < 500, (r.status_code, body)
    assert body.count("\n") == 1 and "Traceback" not in body


def test_dot_segments_redirect_to_clean_path(client: FlaskClient) -> None:
    r = client.get("/example.com//hello@v1.0.0/./linux-amd64-go1.26.8/")
    assert r.status_code == 301 and r.headers["Location"] == "/example.com/hello@v1.0.0/linux-amd64-go1.26.8/"


def test_post_elsewhere_is_405(client: FlaskClient) -> None:
    r = client.post(f"/example.com/hello@v1.0.0/linux-amd64-{GOVERSION}/")
    assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD"


def test_legacy_prefixes_redirect(client: FlaskClient) -> None:
    r = client.get("/b/example.com/hello@v1.0.0/linux-amd64-go1.26.8/?x=1")
    assert r.status_code == 307 and r.headers["Location"] == "/example.com/hello@v1.0.0/linux-amd64-go1.26.8/"


def test_head_answers_like_get(client: FlaskClient) -> None:
    spec = spec_of(f"example.com/hello@v1.0.0/linux-amd64-{GOVERSION}/")
    location, plain = download(client, spec.link() + spec.download_filename())
    r = client.head(location)
    assert r.status_code == 200 and int(r.headers["Content-Length"]) == len(plain) and r.get_data() == b""
    r.close()


def test_warm_cache_sum_equals_cold_cache_sum(proxy: ModuleProxy, tmp_path: Path, client: FlaskClient) -> None:
    """A server with empty caches builds the same bytes as the one whose caches are warm."""
    spec = spec_of(f"example.com/hello@v1.1.0/linux-amd64-{GOVERSION}/")
    warm, _ = download(client, spec.link() + spec.download_filename())
    cold_app = create_app(make_config(tmp_path / "data", proxy))  # caches under its own data dir
    cold, _ = download(cold_app.test_client(), spec.link() + spec.download_filename())
    assert sum_in_url(warm) == sum_in_url(cold)
    assert (tmp_path / "data" / "cache" / "build" / GOVERSION).is_dir()


def test_build_timeout_kills_the_build_and_stores_nothing(proxy: ModuleProxy, tmp_path: Path) -> None:
    # Empty caches: compiling the runtime alone takes longer than the timeout.
    app = create_app(make_config(tmp_path / "data", proxy, build_timeout=0.5))
    spec = spec_of(f"example.com/hello@v1.0.0/linux-arm-{GOVERSION}/")
    r = app.test_client().get(spec.link() + spec.download_filename())
    assert r.status_code == 503 and "timed out" in r.get_data(as_text=True)
    store = app.extensions["gobuild"].store
    assert store.result(spec) is None and store.failure(spec) is None
    assert not list((tmp_path / "data" / "tmp").glob("*/cmds/*"))
