"""gobuild/urls.py: what the builders make, the parser reads back as the same thing."""

from __future__ import annotations

import pytest

from gobuild import urls
from gobuild.errors import HTTPProblem
from gobuild.spec import BuildSpec, sum_of
from gobuild.targets import DEFAULT_TARGETS
from gobuild.urls import PAGES, ModuleURL, Page, ShortURL, SpecURL

SUM = sum_of(b"some binary")
SPECS = [
    BuildSpec("example.com/hello", "v1.0.0", "/", "linux", "amd64", "go1.22.3"),
    BuildSpec("example.com/hello", "v1.0.0", "/", "linux", "amd64", "go1.22.3", stripped=True),
    BuildSpec("example.com/multi", "v0.3.0", "/cmd/alpha", "darwin", "arm64", "go1.21.0"),
    BuildSpec("example.com/tool/v2", "v2.1.0", "/cmd/tool", "windows", "amd64", "go1.23.1", stripped=True),
    BuildSpec("example.com/tool/v2", "v2.1.0", "/", "windows", "386", "go1.23.1"),
    BuildSpec("github.com/Old/Thing", "v3.0.1+incompatible", "/cmd/x", "freebsd", "amd64", "go1.22.0"),
    BuildSpec("example.com/hello", "v0.0.0-20240102030405-abcdefabcdef", "/", "linux", "arm64", "go1.22.3"),
    BuildSpec("example.com/hello", "latest", "/sub/dir", "linux", "amd64", "latest"),
]
KINDS = [*PAGES, Page.FILE, Page.FILE_GZ, Page.LEGACY_FILE, Page.LEGACY_FILE_GZ]


def parse(url: str) -> ModuleURL | ShortURL | SpecURL:
    assert url.startswith("/")
    return urls.parse(url[1:], DEFAULT_TARGETS)


@pytest.mark.parametrize("spec", SPECS, ids=str)
@pytest.mark.parametrize("page", KINDS, ids=str)
def test_build_and_result_urls_parse_back(spec: BuildSpec, page: Page) -> None:
    if page.startswith("legacy-") and spec.download_filename(legacy=True) == spec.download_filename():
        page = Page(page.removeprefix("legacy-"))  # the same URL: only /vN roots had other names in the original
    assert parse(urls.build_url(spec, page)) == SpecURL(spec, None, page)
    assert parse(urls.result_url(spec, SUM, page)) == SpecURL(spec, SUM, page)


def test_a_v2_root_command_has_a_legacy_file_name() -> None:
    spec = SPECS[4]
    assert urls.build_url(spec, Page.LEGACY_FILE) != urls.build_url(spec, Page.FILE)


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_file_urls_end_in_the_download_name(spec: BuildSpec) -> None:
    name = spec.download_filename()
    assert urls.result_url(spec, SUM, Page.FILE) == f"/{spec}{SUM}/{name}"
    assert urls.result_url(spec, SUM, Page.FILE_GZ).endswith(f"/{name}.gz")
    assert name.endswith(".exe") == (spec.goos == "windows")
    assert urls.build_url(spec) == urls.build_prefix(spec.module, spec.version, spec.dir) + spec.target_variant + "/"


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_module_and_short_urls_parse_back(spec: BuildSpec) -> None:
    assert parse(urls.module_url(spec.module)) == ModuleURL(spec.module)
    assert parse(urls.short_url(spec.module, spec.version)) == ShortURL(spec.module, spec.version)


def test_latest_url_names_the_newest_version_and_go() -> None:
    spec = SPECS[2]
    assert parse(urls.latest_url(spec)) == SpecURL(spec.with_(version="latest", goversion="latest"), None, Page.MAIN)


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_install_and_badge_urls_parse_back(spec: BuildSpec) -> None:
    install = urls.install_url(spec.module, spec.version, spec.dir)
    assert install.endswith("/" + urls.SCRIPT)
    assert urls.parse_install(install[1:].removesuffix("/" + urls.SCRIPT)) == (spec.module, spec.version, spec.dir)
    badge = urls.badge_url(spec.module, spec.dir)
    assert urls.parse_badge(badge[1:].removesuffix("/" + urls.BADGE)) == (spec.module, spec.dir)


def test_install_and_badge_prefixes_refuse_what_they_cannot_name() -> None:
    for bad in ("example.com/hello", "-bad.com@v1.0.0"):
        with pytest.raises(HTTPProblem) as e:
            urls.parse_install(bad)
        assert e.value.status == 404
    with pytest.raises(HTTPProblem, match="expected /<module>@latest/"):
        urls.parse_badge("example.com/hello@v1.0.0")
    assert urls.parse_install("example.com/hello@") == ("example.com/hello", "latest", "/")


def test_feed_and_tlog_urls() -> None:
    assert urls.feed_url() == "/builds.atom"
    assert urls.feed_url("example.com/hello") == "/example.com/hello/builds.atom"
    assert urls.tlog_url() == "/tlog" and urls.tlog_url("http://127.0.0.1:8000/") == "http://127.0.0.1:8000/tlog"
