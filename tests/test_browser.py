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
                 "--no-first-run", "--host-resolver-rules=MAP gobuild.test 127.0.0.1"]
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python app.py` with waitress, empty caches (so the build is slow enough to watch), one build at a time."""
    with ModuleProxy() as proxy, real_server(tmp_path_factory.mktemp("browser"), proxy.url, max_builds=1) as base:
        proxy.add("example.com/hello", "v1.0.0", hello_module("example.com/hello", "v1.0.0"))
        proxy.add("example.com/broken", "v1.0.0", {
            "go.mod": "module example.com/broken\n\ngo 1.22\n",
            "main.go": 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println(undefinedName) }\n'})
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


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, user_agent=(
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/120 Mobile Safari/537.36"))
    p = context.new_page()
    yield p
    context.close()


def shot(page: Page, name: str) -> None:
    """A full-page screenshot kept as a test artifact (looked at by people, not compared)."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


# The elements that reach past the phone's screen (a mobile browser widens its layout viewport to
# fit them, so window.innerWidth grows with them: the screen width is what counts).
OVERFLOWING = """() => Array.from(document.querySelectorAll('body *'))
  .filter(e => e.getBoundingClientRect().right > screen.width + 1 && !e.closest('[hidden], details:not([open])'))
  .map(e => e.tagName + '.' + e.className + ': ' + (e.textContent || '').trim().slice(0, 40))"""


def overflowing(page: Page) -> list[str]:
    """What on the page is wider than the screen (and so scrolls sideways)."""
    return list(page.evaluate(OVERFLOWING))


def test_type_a_module_watch_the_build_and_download(server: str, page: Page) -> None:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(server + "/")
    page.fill("input[name=m]", "example.com/hello")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/example.com/hello@v1.0.0/linux-amd64-{GOVERSION}/")
    shot(page, "build-pending")
    page.get_by_role("button", name="Start build").click()
    # The go output streams in while the build is still running (empty caches: it takes seconds).
    expect(page.locator("#log")).to_contain_text("go mod download", timeout=30_000)
    # Compiling the standard library: the phase with its count, announced to screen readers.
    expect(page.locator("#status")).to_contain_text("Compiling:", timeout=60_000)
    expect(page.locator("#announce")).to_have_text("Building: compiling")
    expect(page.locator("ol.phases [aria-current=step]")).to_have_text("Compile")
    assert "linux-amd64" in page.url and page.url.endswith(f"-{GOVERSION}/")  # still the build page
    watch_a_queued_build(server, page)
    # go's commands are folded; one click shows the full log.
    expect(page.locator("#log")).to_contain_text("gobuild: compiling")
    expect(page.locator("#log .x").first).to_be_hidden()
    shot(page, "build-compiling")
    page.get_by_text("Full log: also show the commands go ran").click()
    expect(page.locator("#log .x").first).to_be_visible()
    shot(page, "build-compiling-full-log")
    page.wait_for_url("**/linux-amd64-*/0*/", timeout=300_000)
    shown_sum = page.url.rstrip("/").split("/")[-1]
    expect(page.locator("body")).to_contain_text(shown_sum)
    link = page.get_by_role("link", name=f"hello-v1.0.0-{GOVERSION}", exact=True)
    href = link.get_attribute("href")
    assert href
    body = requests.get(page.url + href if not href.startswith("/") else server + href, timeout=30).content
    assert sum_from_digest(hashlib.sha256(body).digest()) == shown_sum
    shot(page, "result-page")
    assert not [e for e in errors if "Content Security Policy" in e], errors


def watch_a_queued_build(server: str, building: Page) -> None:
    """While one build runs (one at a time), another waits in the queue: on a phone, say."""
    assert building.context.browser is not None
    context = building.context.browser.new_context(viewport=PHONE, is_mobile=True)
    phone = context.new_page()
    phone.goto(server + f"/example.com/replaced@v1.0.0/linux-arm64-{GOVERSION}/")
    phone.get_by_role("button", name="Start build").click()
    expect(phone.locator("#status")).to_contain_text("Waiting in the queue: yours is next")
    expect(phone.locator("#announce")).to_have_text("Waiting in the queue, position 1")
    expect(phone.locator("ol.phases [aria-current=step]")).to_have_text("Queue")
    shot(phone, "phone-build-queued")
    phone.screenshot(path=str(ARTIFACTS / "phone-build-queued-screen.png"))
    assert overflowing(phone) == []
    context.close()


def test_failing_module_shows_reason_and_retry_works(server: str, page: Page) -> None:
    page.goto(server + f"/example.com/replaced@v1.0.0/linux-amd64-{GOVERSION}/")
    page.get_by_role("button", name="Start build").click()
    expect(page.locator("#status")).to_contain_text("go.mod has replace directives", timeout=120_000)
    page.reload()
    shot(page, "build-failed")
    page.get_by_role("button", name="Retry").click()  # one click builds again: no Start button in between
    expect(page.locator("#status")).to_contain_text("go.mod has replace directives", timeout=120_000)
    expect(page.get_by_role("button", name="Start build")).to_have_count(0)


def test_failed_compile_shows_go_error_with_commands_folded(server: str, page: Page) -> None:
    page.goto(server + f"/example.com/broken@v1.0.0/linux-amd64-{GOVERSION}/")
    page.get_by_role("button", name="Start build").click()
    expect(page.locator("#status")).to_contain_text("✕ Error:", timeout=300_000)
    page.reload()  # the stored failure, as anyone opening the page sees it
    log = page.locator("pre.log")
    expect(log).to_contain_text("undefined: undefinedName")
    expect(log.locator(".x").first).to_be_hidden()
    expect(page.get_by_role("heading", name="Download")).to_have_count(0)  # no "once built" hints
    shot(page, "build-failed-compile")
    page.get_by_text("Full log: also show the commands go ran").click()
    expect(log.locator(".x").first).to_be_visible()


def test_copy_falls_back_to_selecting_on_plain_http(server: str, page: Page) -> None:
    """gobuild.test is not a secure context (plain HTTP, not loopback): no navigator.clipboard there."""
    port = server.rsplit(":", 1)[1]
    page.goto(f"http://gobuild.test:{port}/example.com/hello@v1.0.0/linux-arm64-{GOVERSION}/")
    assert page.evaluate("window.isSecureContext") is False
    button = page.locator("button[data-copy=reproduce]")
    button.click()
    expect(button).to_have_text("Copied")
    assert page.evaluate("window.getSelection().toString().trim()") == page.locator("#reproduce").inner_text().strip()


def test_copy_uses_the_clipboard_where_it_can(server: str, browser: Browser) -> None:
    context = browser.new_context()
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server)
    page = context.new_page()
    page.goto(server + f"/example.com/hello@v1.0.0/linux-arm64-{GOVERSION}/")
    page.locator("button[data-copy=curl]").click()
    expect(page.locator("button[data-copy=curl]")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == page.locator("#curl").inner_text().strip()
    context.close()


def test_target_filter_and_error_page(server: str, page: Page) -> None:
    page.goto(server + f"/example.com/hello@v1.0.0/linux-arm64-{GOVERSION}/")
    box = page.get_by_label("Filter targets")
    box.fill("arm64")
    column = page.locator("#col-targets")
    expect(column.get_by_role("link", name="linux/arm64")).to_be_visible()
    expect(column.get_by_role("link", name="linux/amd64")).to_be_hidden()
    expect(column.locator("li.os", has_text="plan9")).to_be_hidden()  # no arm64 there
    box.fill("")
    expect(column.get_by_role("link", name="linux/amd64")).to_be_visible()
    page.goto(server + f"/example.com/hello@v1.0.5/linux-arm64-{GOVERSION}/")
    expect(page.locator("h1")).to_have_text("That module, version or page does not exist")
    shot(page, "error-page")
    page.get_by_role("link", name=f"/example.com/hello@v1.0.0/linux-arm64-{GOVERSION}/").click()
    expect(page.get_by_role("button", name="Start build")).to_be_visible()


def test_phone_layout_does_not_overflow(server: str, phone: Page) -> None:
    """At 390 px nothing scrolls sideways: commands wrap, URL tables and columns fit."""
    for name, path in (("phone-home", "/"),
                       ("phone-build-page", f"/example.com/hello@v1.0.0/linux-arm64-{GOVERSION}/"),
                       ("phone-error-page", f"/example.com/hello@v1.0.5/linux-arm64-{GOVERSION}/"),
                       ("phone-result-page", f"/example.com/hello@v1.0.0/linux-amd64-{GOVERSION}/")):
        phone.goto(server + path)
        shot(phone, name)
        phone.screenshot(path=str(ARTIFACTS / f"{name}-screen.png"))  # what the phone shows first, full size
        assert overflowing(phone) == [], name
