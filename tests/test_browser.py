"""A person's journey in a real browser: Playwright driving Debian's Chromium against the real server."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import pytest
import requests
from playwright.sync_api import Browser, Page, expect, sync_playwright

from gobuild.spec import sum_from_digest
from tests.conftest import GOVERSION
from tests.modproxy import ModuleProxy, hello_module
from tests.realserver import ROOT, real_server

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python app.py` with waitress, empty caches (so the build is slow enough to watch)."""
    with ModuleProxy() as proxy, real_server(tmp_path_factory.mktemp("browser"), proxy.url) as base:
        proxy.add("example.com/hello", "v1.0.0", hello_module("example.com/hello", "v1.0.0"))
        proxy.add("example.com/replaced", "v1.0.0", {
            "go.mod": "module example.com/replaced\n\ngo 1.22\n\nreplace example.com/other => ./other\n",
            "main.go": "package main\n\nfunc main() {}\n"})
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert os.path.exists(CHROMIUM), "browser tests need Debian's chromium (.ci/run installs it)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(user_agent="Mozilla/5.0 (X11; Linux x86_64) Chrome/120 Safari/537.36")
    p = context.new_page()
    yield p
    context.close()


def test_type_a_module_watch_the_build_and_download(server: str, page: Page) -> None:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(server + "/")
    page.fill("input[name=m]", "example.com/hello")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/example.com/hello@v1.0.0/linux-amd64-{GOVERSION}/")
    page.get_by_role("button", name="Start build").click()
    # The go output streams in while the build is still running (empty caches: it takes seconds).
    expect(page.locator("#log")).to_contain_text("go mod download", timeout=30_000)
    assert "linux-amd64" in page.url and page.url.endswith(f"-{GOVERSION}/")  # still the build page
    page.wait_for_url("**/linux-amd64-*/0*/", timeout=300_000)
    shown_sum = page.url.rstrip("/").split("/")[-1]
    expect(page.locator("body")).to_contain_text(shown_sum)
    link = page.get_by_role("link", name=f"hello-v1.0.0-{GOVERSION}", exact=True)
    href = link.get_attribute("href")
    assert href
    body = requests.get(page.url + href if not href.startswith("/") else server + href, timeout=30).content
    assert sum_from_digest(hashlib.sha256(body).digest()) == shown_sum
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "result-page.png"), full_page=True)
    assert not [e for e in errors if "Content Security Policy" in e], errors


def test_failing_module_shows_reason_and_retry_works(server: str, page: Page) -> None:
    page.goto(server + f"/example.com/replaced@v1.0.0/linux-amd64-{GOVERSION}/")
    page.get_by_role("button", name="Start build").click()
    expect(page.locator("#status")).to_contain_text("go.mod has replace directives", timeout=120_000)
    page.reload()
    page.get_by_role("button", name="Retry").click()
    expect(page.get_by_role("button", name="Start build")).to_be_visible(timeout=30_000)
