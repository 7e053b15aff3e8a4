"""The browser UI: pages in every state, the live log over SSE and polling, the stream cap, headers and assets."""

from __future__ import annotations

import html
import itertools
import re
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import requests
import waitress
from flask import Flask
from flask.testing import FlaskClient

from gobuild.builds import Coordinator
from gobuild.phases import Phase, ProgressReader
from gobuild.spec import BuildSpec
from gobuild.targets import DEFAULT_TARGETS
from gobuild.web import create_app, live
from tests.conftest import GOVERSION, make_config
from tests.logsample import count_reads
from tests.modproxy import ModuleProxy, hello_module
from tests.realserver import in_thread

ROOT = Path(__file__).resolve().parent.parent
HTMX = {"HX-Request": "true"}  # what htmx sends with each of its requests
LIVE_MODULES = [f"example.com/live{i}" for i in range(9)]
QUEUE_MODULES = [f"example.com/queue{x}" for x in "abc"]
PHASE_MODULES = ["example.com/phases", "example.com/folded"]  # one test each, built nowhere else


@pytest.fixture(scope="module")
def proxy() -> Iterator[ModuleProxy]:
    with ModuleProxy() as p:
        p.add("example.com/hello", "v1.0.0", hello_module("example.com/hello", "v1.0.0"))
        p.add("example.com/hello", "v1.1.0", hello_module("example.com/hello", "v1.1.0", "hi"))
        p.add("example.com/multi", "v0.3.0", {
            "go.mod": "module example.com/multi\n\ngo 1.22\n",
            "cmd/alpha/main.go": "package main\n\nfunc main() {}\n",
            "cmd/beta/main.go": "package main\n\nfunc main() {}\n"})
        p.add("example.com/replaced", "v1.0.0", {
            "go.mod": "module example.com/replaced\n\ngo 1.22\n\nreplace example.com/other => ./other\n",
            "main.go": "package main\n\nfunc main() {}\n"})
        for m in LIVE_MODULES + QUEUE_MODULES + PHASE_MODULES:
            p.add(m, "v1.0.0", hello_module(m, "v1.0.0", m))
        yield p


@pytest.fixture(scope="module")
def notes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("notes") / "notes.txt"
    path.write_text("Operated by the test suite <ops@example.com>.\n")
    return path


@pytest.fixture(scope="module")
def app(proxy: ModuleProxy, tmp_path_factory: pytest.TempPathFactory, server_cache: Path, notes: Path) -> Flask:
    data = tmp_path_factory.mktemp("data")
    return create_app(make_config(data, proxy, cache_dir=str(server_cache), instance_notes_file=str(notes),
                                  threads=4, max_streams=2))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def spec_of(s: str) -> BuildSpec:
    return BuildSpec.parse(s, set(DEFAULT_TARGETS))


def svc(app: Flask) -> Any:
    return app.extensions["gobuild"]


class Gate:
    """Makes the builds of one module write numbered lines to their log, one per release(), before compiling."""

    def __init__(self, app: Flask, monkeypatch: pytest.MonkeyPatch, module: str, lines: int) -> None:
        self.lines = [f"step {i}: <compile> pkg{i} & more\n" for i in range(lines)]
        self._sem = threading.Semaphore(0)
        builder = svc(app).builder
        real = builder._build

        def build(spec: BuildSpec, out: Any, *args: Any, **kw: Any) -> Any:
            if spec.module == module:
                for line in self.lines:
                    if not self._sem.acquire(timeout=60):
                        break
                    out.write(line.encode())
                    out.flush()
            return real(spec, out, *args, **kw)

        monkeypatch.setattr(builder, "_build", build)

    def release(self, n: int = 1) -> None:
        for _ in range(n):
            self._sem.release()


@dataclass
class Event:
    """One server-sent event (or a comment)."""

    event: str = "message"
    id: str | None = None
    data: list[str] = field(default_factory=list)
    comment: str = ""

    @property
    def text(self) -> str:
        return "\n".join(self.data)


def parse_events(chunks: Iterator[bytes]) -> Iterator[Event]:
    """Server-sent events from a byte stream, as a browser's EventSource splits them."""
    buf = ""
    for chunk in chunks:
        buf += chunk.decode()
        while "\n\n" in buf:
            block, buf = buf.split("\n\n", 1)
            ev = Event()
            for line in block.split("\n"):
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "":
                    ev.comment = value
                elif name == "event":
                    ev.event = value
                elif name == "id":
                    ev.id = value
                elif name == "data":
                    ev.data.append(value)
            yield ev


def next_of(events: Iterator[Event], kind: str) -> Event:
    """The next event of a kind (skipping comments and others)."""
    for ev in events:
        if ev.event == kind and not ev.comment:
            return ev
    raise AssertionError(f"stream ended before a {kind} event")


def log_text(ev: Event) -> str:
    """The log text an event carries (the page appends its data as HTML: escaped text in spans)."""
    return html.unescape(re.sub(r"</?span[^>]*>", "", ev.text))


def stream(client: FlaskClient, path: str, **headers: str) -> tuple[Any, Iterator[Event]]:
    resp = client.get(path, headers=headers, buffered=False)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.mimetype == "text/event-stream"
    return resp, parse_events(iter(resp.response))


def wait_done(app: Flask, spec: BuildSpec) -> None:
    job = svc(app).coordinator.last(spec)
    assert job is not None
    assert job.done.wait(120)


# Pages and headers ---------------------------------------------------------------------------------


class PageCheck(HTMLParser):
    """Collects what the CSP forbids: inline scripts, event handler attributes, inline styles."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.problems: list[str] = []
        self.in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {k for k, _ in attrs}
        if tag == "script":
            src = dict(attrs).get("src")
            if not src:
                self.problems.append("inline <script>")
            else:
                self.scripts.append(src)
        if tag == "style":
            self.problems.append("<style> element")
        for name in names:
            if name.startswith("on") or name == "style":
                self.problems.append(f"{name}= on <{tag}>")
        for _, value in attrs:
            if value and value.strip().lower().startswith("javascript:"):
                self.problems.append(f"javascript: URL on <{tag}>")


def check_html_response(resp: Any) -> str:
    """The page's HTML after checking its security headers and that it runs only our own script files."""
    assert resp.mimetype == "text/html"
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    body = resp.get_data(as_text=True)
    checker = PageCheck()
    checker.feed(body)
    assert checker.problems == []
    assert all(src.startswith("/static/") for src in checker.scripts), checker.scripts
    return body


@pytest.fixture(scope="module")
def built(app: Flask) -> tuple[BuildSpec, str]:
    """example.com/hello@v1.0.0 for linux/amd64, built: (spec, sum)."""
    spec = spec_of(f"example.com/hello@v1.0.0/linux-amd64-{GOVERSION}/")
    result = svc(app).coordinator.built(spec, 300)
    return spec, result.sum


def test_every_page_has_security_headers_and_no_inline_script(client: FlaskClient, app: Flask,
                                                              built: tuple[BuildSpec, str]) -> None:
    spec, sum_ = built
    failing = spec_of(f"example.com/replaced@v1.0.0/linux-amd64-{GOVERSION}/")
    assert client.get(failing.link() + failing.download_filename()).status_code == 422
    pages = {
        "/": 200,
        "/example.com/multi": 200,
        spec.with_(goarch="arm64").link(): 200,  # pending
        spec.result_link(sum_): 200,
        failing.link(): 422,
        "/example.com/nonexistent": 404,
    }
    for path, status in pages.items():
        r = client.get(path, headers={"Accept": "text/html", "User-Agent": "curl/8"})
        assert r.status_code == status, (path, r.status_code)
        check_html_response(r)


def test_templates_hold_no_inline_script_or_style() -> None:
    for path in sorted((ROOT / "gobuild" / "templates").glob("*.html")):
        text = path.read_text()
        for m in re.finditer(r"<script\b[^>]*>", text):
            assert "src=" in m.group(0), (path.name, m.group(0))
        assert not re.search(r"\son[a-z]+\s*=", text), path.name
        assert not re.search(r"\sstyle\s*=|<style", text), path.name
        assert "javascript:" not in text, path.name


def test_vendored_htmx_is_pinned_with_its_license_and_cached_long(client: FlaskClient) -> None:
    vendor = ROOT / "gobuild" / "static" / "vendor"
    htmx, sse = vendor / "htmx-2.0.11.min.js", vendor / "htmx-ext-sse-2.2.4.js"
    assert htmx.read_text().startswith("/*!\n * htmx.org 2.0.11 ") and "Zero-Clause BSD" in htmx.read_text()[:2000]
    assert sse.read_text().startswith("/*!\n * htmx-ext-sse 2.2.4 ") and "BSD Zero Clause" in sse.read_text()[:2000]
    page = client.get("/").get_data(as_text=True)
    srcs = re.findall(r'<script src="([^"]+)"', page)
    assert [s.split("?")[0] for s in srcs] == ["/static/vendor/htmx-2.0.11.min.js",
                                               "/static/vendor/htmx-ext-sse-2.2.4.js", "/static/gobuild.js"]
    for src in srcs + re.findall(r'<link rel="stylesheet" href="([^"]+)"', page):
        r = client.get(src)
        assert r.status_code == 200 and r.headers["Cache-Control"] == "public, max-age=31536000, immutable", src
        r.close()


@pytest.mark.parametrize("path", ["/favicon.ico", "/favicon-building.png", "/favicon-error.png"])
def test_favicons_are_pngs(client: FlaskClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 200 and r.mimetype == "image/png" and r.get_data().startswith(b"\x89PNG\r\n\x1a\n")
    r.close()


def test_home_page(client: FlaskClient, app: Flask, built: tuple[BuildSpec, str]) -> None:
    spec, sum_ = built
    body = check_html_response(client.get("/"))
    assert "Try a module" in body and 'name="m"' in body
    assert spec.result_link(sum_) in body  # recent builds, from the log
    assert "Operated by the test suite &lt;ops@example.com&gt;." in body  # instance notes, escaped
    assert svc(app).tlog.verifier_key in body
    assert "go install -trimpath -ldflags=-buildid=" in body
    # The examples use a command this instance's proxy serves: the newest build.
    example = spec.with_(version="latest", goversion="latest", stripped=False)
    assert f"curl -fL -o {spec.exec_name} http://localhost{example.link()}{example.download_filename()}" in body
    assert f"{spec.module}@latest" in body  # the gobuild get example
    r = client.get("/?m=https://example.com/hello/")
    assert r.status_code == 307 and r.headers["Location"] == "/example.com/hello"


@pytest.mark.parametrize("example, want", [
    ("", "golang.org/x/example/hello@latest/linux-amd64-latest/hello-latest-latest"),
    ("golang.org/x/tools@latest/cmd/stringer", "golang.org/x/tools@latest/cmd/stringer/linux-amd64-latest/stringer-"),
    ("golang.org/x/tools@v0.30.0/cmd/stringer", "golang.org/x/tools@v0.30.0/cmd/stringer/linux-amd64-latest/stringer-"),
    ("not a path", "golang.org/x/example/hello@latest/"),
])
def test_home_page_example_without_builds(tmp_path: Path, example: str, want: str) -> None:
    with ModuleProxy() as proxy:
        client = create_app(make_config(tmp_path, proxy, example=example)).test_client()
        body = client.get("/").get_data(as_text=True)
    assert f"http://localhost/{want}" in body and "example.com/hello" not in body


def test_opening_the_build_page_never_starts_a_build(client: FlaskClient, app: Flask) -> None:
    spec = spec_of(f"example.com/hello@v1.1.0/linux-arm64-{GOVERSION}/")
    for _ in range(3):
        body = check_html_response(client.get(spec.link()))
    assert '<form method="post" action="start">' in body and "Start build" in body
    assert 'http-equiv="refresh"' not in body  # nothing to wait for
    assert "/favicon-building.png" in body
    assert svc(app).coordinator.last(spec) is None and svc(app).store.result(spec) is None


def test_start_button_without_javascript(client: FlaskClient, app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """No JS: POST start, then a page that refreshes itself and shows the log so far, then the result."""
    spec = spec_of(f"example.com/live0@v1.0.0/linux-amd64-{GOVERSION}/")
    gate = Gate(app, monkeypatch, "example.com/live0", 3)
    r = client.post(spec.link() + "start")
    assert r.status_code == 303 and r.headers["Location"] == spec.link()
    gate.release(2)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "step 1:" not in client.get(spec.link()).get_data(as_text=True):
        time.sleep(0.05)
    body = check_html_response(client.get(spec.link()))
    assert '<noscript><meta http-equiv="refresh"' in body
    assert "step 0: &lt;compile&gt; pkg0 &amp; more\nstep 1:" in body
    offset = len("".join(gate.lines[:2]).encode())
    assert f'sse-connect="events?offset={offset}"' in body  # the stream goes on after what is shown
    assert client.post(spec.link() + "start").status_code == 303  # a second click joins the same build
    gate.release()
    wait_done(app, spec)
    r = client.get(spec.link())
    assert r.status_code == 307 and r.headers["Location"] == spec.result_link(svc(app).store.result(spec).sum)


# The live log --------------------------------------------------------------------------------------


def test_live_log_arrives_line_by_line_while_the_build_runs(client: FlaskClient, app: Flask,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    spec = spec_of(f"example.com/live1@v1.0.0/linux-amd64-{GOVERSION}/")
    gate = Gate(app, monkeypatch, "example.com/live1", 4)
    resp, events = stream(client, spec.link() + "events")  # an original client: this starts the build
    first = next(events)
    assert first.comment == "keepalive"
    assert next_of(events, "update").text.startswith('{"Kind":"QueuePosition","QueuePosition":')
    job = svc(app).coordinator.get(spec)
    received = ""
    for i, line in enumerate(gate.lines):
        gate.release()
        ev = next_of(events, "log")
        assert log_text(ev).startswith(line)  # the last may bring the rest of the build with it
        if i < len(gate.lines) - 1:  # released line by line: the build is still held at the gate
            assert not job.done.is_set()
        received += log_text(ev)
        assert ev.id == str(len(received.encode()))  # the byte offset just after the lines
    while (ev := next(events)).event != "update":
        if ev.event == "log":
            received += log_text(ev)
            assert ev.id == str(len(received.encode()))
    result = svc(app).store.result(spec)
    assert ev.text == f'{{"Kind":"Success","Sum":"{result.sum}"}}'
    assert next_of(events, "end").text == "Success"
    assert list(events) == []  # and the stream ends
    resp.close()
    assert received == svc(app).store.read_blob(result.log).decode()  # the page saw the whole log, once
    assert received.startswith("".join(gate.lines)) and "go install" in received


def test_reconnect_with_last_event_id_neither_repeats_nor_loses_a_line(client: FlaskClient, app: Flask,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    spec = spec_of(f"example.com/live2@v1.0.0/linux-amd64-{GOVERSION}/")
    gate = Gate(app, monkeypatch, "example.com/live2", 6)
    assert client.post(spec.link() + "start").status_code == 303
    resp, events = stream(client, spec.link() + "events?offset=0")
    seen = []
    gate.release(2)
    while len("".join(seen)) < len("".join(gate.lines[:2])):  # one event or two
        ev = next_of(events, "log")
        seen.append(log_text(ev))
        last_id = ev.id
    resp.close()  # the connection drops; the build goes on
    gate.release(2)
    time.sleep(0.3)
    assert svc(app).coordinator.get(spec) is not None
    resp, events = stream(client, spec.link() + "events?offset=0", **{"Last-Event-ID": last_id or ""})
    while len("".join(seen)) < len("".join(gate.lines[:4])):
        ev = next_of(events, "log")
        seen.append(log_text(ev))
        last_id = ev.id
    assert "".join(seen) == "".join(gate.lines[:4])
    resp.close()
    gate.release(2)
    wait_done(app, spec)
    # The build ended while we were away: the result's events send the rest of the log first.
    result = svc(app).store.result(spec)
    r = client.get(spec.link() + "events", headers={"Last-Event-ID": last_id or ""})
    assert r.status_code == 307 and r.headers["Location"] == spec.result_link(result.sum) + "events"
    resp, events = stream(client, r.headers["Location"], **{"Last-Event-ID": last_id or ""})
    while (ev := next(events)).event != "update":
        if ev.event == "log":
            seen.append(log_text(ev))
    assert ev.text == f'{{"Kind":"Success","Sum":"{result.sum}"}}'
    resp.close()
    assert "".join(seen) == svc(app).store.read_blob(result.log).decode()


def test_result_events_stay_as_the_original_sends_them(client: FlaskClient, built: tuple[BuildSpec, str]) -> None:
    spec, sum_ = built
    r = client.get(spec.result_link(sum_) + "events")
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-cache"
    assert r.get_data(as_text=True) == f'event: update\ndata: {{"Kind":"Success","Sum":"{sum_}"}}\n\n'


def test_resuming_reader_never_starts_a_build(client: FlaskClient, app: Flask) -> None:
    spec = spec_of(f"example.com/live3@v1.0.0/linux-amd64-{GOVERSION}/")
    resp, events = stream(client, spec.link() + "events", **{"Last-Event-ID": "120"})
    evs = list(events)
    resp.close()
    assert [e.event for e in evs if not e.comment] == ["status", "announce", "update", "end"]
    assert '"Kind":"TempFailed"' in evs[-2].text
    assert svc(app).coordinator.last(spec) is None


def test_keepalive_comments_while_quiet(client: FlaskClient, app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live, "KEEPALIVE_SECONDS", 0.3)
    spec = spec_of(f"example.com/live4@v1.0.0/linux-amd64-{GOVERSION}/")
    gate = Gate(app, monkeypatch, "example.com/live4", 1)
    resp, events = stream(client, spec.link() + "events")
    assert next(events).comment == "keepalive"
    started, keepalives = time.monotonic(), 0
    while keepalives < 2:  # after the first status and updates, nothing but keep-alives
        ev = next(events)
        keepalives += ev.comment == "keepalive"
        assert ev.comment or ev.event in ("update", "status", "announce")
    assert time.monotonic() - started < 5
    gate.release()
    assert next_of(events, "end").text == "Success"
    resp.close()


def test_polling_fragment(client: FlaskClient, app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = spec_of(f"example.com/live5@v1.0.0/linux-amd64-{GOVERSION}/")
    gate = Gate(app, monkeypatch, "example.com/live5", 3)
    r = client.get(spec.link() + "live?offset=0", headers=HTMX)
    assert r.headers["HX-Refresh"] == "true"  # nothing runs: the page reloads and shows the Start button
    r = client.get(spec.link() + "live?offset=0")  # not htmx: it would ignore HX-Refresh
    assert (r.status_code, r.headers["Location"], "HX-Refresh" in r.headers) == (303, ".", False)
    client.post(spec.link() + "start")
    gate.release(2)
    time.sleep(0.3)
    body = check_html_response(client.get(spec.link() + "live?offset=0", headers=HTMX))
    two = len("".join(gate.lines[:2]).encode())
    assert '<span hx-swap-oob="beforeend:#log">step 0: &lt;compile&gt; pkg0 &amp; more\nstep 1:' in body
    assert f'hx-get="live?offset={two}&amp;said=Building%3A%20starting" hx-trigger="every 1s"' in body
    assert 'id="status" hx-swap-oob="true"' in body
    assert '<p id="announce" hx-swap-oob="innerHTML">Building: starting</p>' in body  # new to the reader
    body = client.get(spec.link() + f"live?offset={two}&said=Building: starting", headers=HTMX).get_data(as_text=True)
    assert "hx-swap-oob=\"beforeend" not in body and f'live?offset={two}&amp;' in body  # nothing new yet
    assert 'id="announce"' not in body  # said already: a screen reader is not told twice
    gate.release()
    wait_done(app, spec)
    r = client.get(spec.link() + f"live?offset={two}", headers=HTMX, follow_redirects=True)
    result_link = spec.result_link(svc(app).store.result(spec).sum)
    assert (r.status_code, r.headers["HX-Redirect"], r.headers["Cache-Control"]) == (200, result_link, "no-store")
    r = client.get(spec.link() + f"live?offset={two}", follow_redirects=True)  # not htmx: to the result page
    assert (r.status_code, r.request.path, r.history[-1].status_code) == (200, result_link, 303)


def test_a_poll_far_into_a_long_log_reads_only_what_is_new(client: FlaskClient, app: Flask,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    spec = spec_of(f"example.com/live8@v1.0.0/linux-amd64-{GOVERSION}/")
    gate = Gate(app, monkeypatch, "example.com/live8", 10_001)
    client.post(spec.link() + "start")
    gate.release(10_000)
    written = len("".join(gate.lines[:10_000]).encode())
    job = svc(app).coordinator.last(spec)
    assert job is not None
    while job.log_path.stat().st_size < written:
        time.sleep(0.05)
    offset, polls = 0, 0
    while offset < written:  # the page polls its way to the end
        polls += 1
        assert polls < 1000, f"polling stuck at {offset} of {written} bytes"
        body = client.get(spec.link() + f"live?offset={offset}", headers=HTMX).get_data(as_text=True)
        offset = int(re.search(r'hx-get="live\?offset=(\d+)', body).group(1))  # type: ignore[union-attr]
    read = count_reads(monkeypatch)
    body = client.get(spec.link() + f"live?offset={offset}", headers=HTMX).get_data(as_text=True)
    assert f'hx-get="live?offset={offset}&amp;' in body  # nothing new
    assert sum(read) < 1024, f"read {sum(read)} bytes of a {written}-byte log to answer that nothing is new"
    resp, events = stream(client, spec.link() + "events", **{"Last-Event-ID": str(offset)})  # a reconnect likewise
    assert "status-running" in next_of(events, "status").text
    resp.close()
    assert sum(read) < 1024, f"read {sum(read)} bytes of a {written}-byte log to resume a stream at its end"
    gate.release()
    wait_done(app, spec)


def test_failed_build_shows_the_reason_and_retry_works(client: FlaskClient, app: Flask) -> None:
    spec = spec_of(f"example.com/replaced@v1.0.0/linux-arm64-{GOVERSION}/")
    client.post(spec.link() + "start")
    wait_done(app, spec)
    r = client.get(spec.link())
    assert r.status_code == 422
    body = check_html_response(r)
    assert "✕ Error:" in body and "go.mod has replace directives" in body
    assert '<form method="post" action="retry">' in body and "/favicon-error.png" in body
    failed_job = svc(app).coordinator.last(spec)
    r = client.post(spec.link() + "retry")  # one click: the failure is forgotten and the build runs again
    assert r.status_code == 303 and r.headers["Location"] == spec.link()
    assert svc(app).coordinator.last(spec) not in (None, failed_job)
    wait_done(app, spec)
    assert client.get(spec.link()).status_code == 422  # it failed again, for the same reason


# Result page ---------------------------------------------------------------------------------------


def li_of(body: str, text: str) -> str:
    """The <li> of a link column whose link text is text."""
    m = re.search(r"<li[^>]*><a [^>]*>" + re.escape(text) + r"</a>.*?</li>", body)
    assert m, text
    return m.group(0)


def test_result_page(client: FlaskClient, app: Flask, built: tuple[BuildSpec, str]) -> None:
    spec, sum_ = built
    stripped = spec.with_(stripped=True)
    stripped_sum = svc(app).coordinator.built(stripped, 300).sum
    result = svc(app).store.result(spec)
    body = check_html_response(client.get(spec.result_link(sum_)))
    assert f'<code id="sum">{sum_}</code>' in body and 'data-copy="sum"' in body
    assert f'title="{result.size} bytes">{result.size / 1048576:.1f} MB' in body
    assert f'title="{result.size_gz} bytes">{result.size_gz / 1048576:.1f} MB' in body
    assert f"gobuild get -verifierkey {svc(app).tlog.verifier_key} " in body and f"-sum {sum_}" in body
    reproduce = f"GOTOOLCHAIN={GOVERSION} go install -trimpath -ldflags=&#39;-buildid=&#39; -- example.com/hello@v1.0.0"
    assert reproduce in body
    for title in ("Module versions", "Targets", "Go versions", "Variants"):
        assert f"<h3>{title}</h3>" in body
    # Module versions from the proxy's list, newest first; each links to its result or build page.
    assert body.index(">v1.1.0</a>") < body.index(">v1.0.0</a>")
    assert 'class="active"' in li_of(body, "v1.0.0") and "✓" in li_of(body, "v1.0.0")
    assert f'href="{spec.with_(version="v1.1.0").link()}"' in li_of(body, "v1.1.0") and "✓" not in li_of(body, "v1.1.0")
    assert "✓" in li_of(body, "linux/amd64") and "✓" not in li_of(body, "windows/arm64")
    assert f'href="{spec.with_(goos="windows", goarch="arm64").link()}"' in li_of(body, "windows/arm64")
    assert "✓" in li_of(body, GOVERSION)
    assert f'href="{stripped.result_link(stripped_sum)}"' in li_of(body, "stripped") and "✓" in li_of(body, "stripped")
    # The newer module version is announced.
    assert "A newer version of this module is available: v1.1.0" in body
    assert "https://pkg.go.dev/example.com/hello@v1.0.0?tab=doc" in body
    assert 'href="/example.com/hello@latest/linux-amd64-latest/"' in body


def test_versions_list_is_cached_briefly(client: FlaskClient, proxy: ModuleProxy, built: tuple[BuildSpec, str]) -> None:
    spec, sum_ = built
    before = len([r for r in proxy.requests if r.endswith("/@v/list")])
    for _ in range(3):
        client.get(spec.result_link(sum_)).close()
    assert len([r for r in proxy.requests if r.endswith("/@v/list")]) - before <= 1


# Jobs clean up -------------------------------------------------------------------------------------


def test_job_logs_are_removed_after_builds_and_stale_ones_at_start(app: Flask, built: tuple[BuildSpec, str]) -> None:
    jobs = svc(app).store.root / "jobs"
    for _ in range(100):  # the last test's job may still be finishing
        if not list(jobs.iterdir()):
            break
        time.sleep(0.1)
    assert list(jobs.iterdir()) == []
    (jobs / "0123abcd-999999999-0.log").write_text("left by a killed process")
    (jobs / "0123abcd.log").write_text("left by an older version")
    Coordinator(svc(app).builder, 1)
    assert list(jobs.iterdir()) == []


# A real server: the stream cap ---------------------------------------------------------------------


@contextmanager
def serving(app: Flask, threads: int) -> Iterator[str]:
    """The app served by waitress on a free port of 127.0.0.1: its base URL."""
    with in_thread(waitress.create_server(app, host="127.0.0.1", port=0, threads=threads)) as base:
        yield base


def test_past_the_stream_cap_pages_poll_and_the_site_stays_responsive(app: Flask, built: tuple[BuildSpec, str],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """threads=4, max_streams=2: two streams hold two threads, the third is refused, pages still answer."""
    spec = spec_of(f"example.com/live6@v1.0.0/linux-amd64-{GOVERSION}/")
    gate = Gate(app, monkeypatch, "example.com/live6", 2)
    monkeypatch.setattr(live, "KEEPALIVE_SECONDS", 0.3)
    events = spec.link() + "events?offset=0"
    lines: list[Iterator[bytes]] = []
    opened: list[requests.Response] = []
    with serving(app, svc(app).config.threads) as base, requests.Session() as http, ExitStack() as streams:
        assert http.post(base + spec.link() + "start", allow_redirects=False).status_code == 303
        for _ in range(2):
            r = streams.enter_context(requests.get(base + events, stream=True, timeout=10))
            opened.append(r)
            lines.append(r.iter_lines())
            assert r.status_code == 200 and next(lines[-1]) == b": keepalive"

        def quick(method: str, path: str) -> requests.Response:
            started = time.monotonic()
            r = http.request(method, base + path, timeout=5, allow_redirects=False)
            assert time.monotonic() - started < 1.0, path
            return r

        r = quick("GET", events)
        assert r.status_code == 503 and r.headers["Retry-After"]
        page = quick("GET", spec.link())
        assert page.status_code == 200
        assert 'hx-get="live?offset=0&amp;said=' in page.text and "sse-connect" not in page.text
        for path in ("/", "/static/style.css", "/favicon.ico", built[0].result_link(built[1]), "/tlog/latest"):
            assert quick("GET", path).status_code == 200, path
        # A browser that goes away frees its slot at the next keep-alive.
        opened[0].close()
        deadline = time.monotonic() + 3
        while (r := streams.enter_context(requests.get(base + events, stream=True, timeout=10))).status_code == 503:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        lines[0] = r.iter_lines()
        gate.release()
        deadline = time.monotonic() + 5
        while "step 0:" not in html.unescape(quick("GET", spec.link() + "live?offset=0").text):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        gate.release()
        for rest in lines:  # the streams end with the build
            assert b"event: end" in list(rest)
        page = http.get(base + spec.link(), timeout=5, allow_redirects=False)
        assert page.status_code == 307


# Where the build is: phases, the folded log ------------------------------------------------------


class Hold:
    """Holds the builds of one module in front of a step (a method of the builder or its compiler) until released."""

    def __init__(self, app: Flask, monkeypatch: pytest.MonkeyPatch, module: str, method: str) -> None:
        self.reached, self._go = threading.Event(), threading.Event()
        builder = svc(app).builder
        owner = builder if hasattr(builder, method) else builder.compiler
        real = getattr(owner, method)

        def held(*args: Any, **kw: Any) -> Any:
            if any(module in str(a) for a in args):
                self.reached.set()
                self._go.wait(60)
            return real(*args, **kw)

        monkeypatch.setattr(owner, method, held)

    def release(self) -> None:
        self._go.set()


def until(events: Iterator[Event], kind: str, text: str) -> list[Event]:
    """The events up to and including the first of a kind whose data holds text."""
    seen = []
    for ev in events:
        seen.append(ev)
        if ev.event == kind and text in ev.text:
            return seen
    raise AssertionError(f"stream ended before a {kind} event with {text!r}")


def test_live_status_shows_the_phase_and_announces_each_change_once(client: FlaskClient, app: Flask,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    spec = spec_of(f"example.com/phases@v1.0.0/linux-amd64-{GOVERSION}/")
    download = Hold(app, monkeypatch, "example.com/phases", "download_module")
    compile_ = Hold(app, monkeypatch, "example.com/phases", "_install")
    resp, events = stream(client, spec.link() + "events")
    seen = until(events, "status", "Downloading the module")
    assert 'aria-current="step">Download<' in seen[-1].text and 'class="done">Queue<' in seen[-1].text
    assert re.search(r'<time data-since="\d+">\d+:\d\d</time> elapsed', seen[-1].text)
    download.release()
    seen += until(events, "status", "Compiling:")
    m = re.search(r"Compiling: 0 of (\d+) packages <progress max=\"(\d+)\" value=\"0\">", seen[-1].text)
    assert m and int(m.group(1)) >= 1 and m.group(1) == m.group(2)  # counted before compiling: at least main
    assert 'aria-current="step">Compile<' in seen[-1].text
    doc = client.get(spec.link(), headers={"Accept": "application/json"}).get_json()  # the JSON twin says it too
    assert doc["state"] == "running" and doc["phase"]["name"] == "compiling"
    assert doc["phase"]["total"] == int(m.group(1)) and doc["phase"]["compiled"] == 0
    assert isinstance(doc["phase"]["since"], int) and isinstance(doc["phase"]["started"], int)
    compile_.release()
    seen += until(events, "end", "Success")
    resp.close()
    said = [ev.text for ev in seen if ev.event == "announce"]
    assert said[-1] == "Build successful"
    assert said.index("Building: downloading module") < said.index("Building: compiling")
    assert all(a != b for a, b in itertools.pairwise(said))  # each change once
    assert all(ev.event in ("status", "announce", "update", "log", "end") for ev in seen if not ev.comment)


def test_a_queued_build_shows_its_place(client: FlaskClient, app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second, third = (spec_of(f"{m}@v1.0.0/linux-amd64-{GOVERSION}/") for m in QUEUE_MODULES)
    holds = [Hold(app, monkeypatch, m, "download_module") for m in QUEUE_MODULES[:2]]
    for spec, hold in zip((first, second), holds, strict=True):  # both build slots (max_builds 2)
        client.post(spec.link() + "start")
        assert hold.reached.wait(120)
    client.post(third.link() + "start")
    body = check_html_response(client.get(third.link()))
    for hold in holds:
        hold.release()
    assert "Waiting in the queue: yours is next" in body and 'aria-current="step">Queue<' in body
    assert 'role="status" aria-live="polite" sse-swap="announce">Waiting in the queue, position 1<' in body
    assert re.search(r'<time data-since="\d+">\d+:\d\d</time> elapsed', body)
    for spec in (first, second, third):
        wait_done(app, spec)


def test_the_page_folds_go_commands_and_shows_where_the_build_is(client: FlaskClient, app: Flask,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    spec = spec_of(f"example.com/folded@v1.0.0/linux-amd64-{GOVERSION}/")
    hashing = Hold(app, monkeypatch, "example.com/folded", "_store")
    client.post(spec.link() + "start")
    assert hashing.reached.wait(120)
    body = check_html_response(client.get(spec.link()))
    hashing.release()
    assert "Linking the binary…" in body and 'aria-current="step">Link<' in body
    assert '<p id="announce" class="visually-hidden" role="status" aria-live="polite"' in body
    log = body[body.index('<pre id="log"'):]
    log = log[:log.index("</pre>")]
    assert '<details class="fold"><summary>Full log' in body and body.index('<details class="fold">') < body.index(log)
    assert '<span class="x">WORK=' in log and '<span class="x">mkdir -p $WORK/' in log
    shown = re.sub(r'<span class="x">[^<]*</span>', "", log)
    assert "\nexample.com/folded\n" in shown  # go -v names the package it compiles
    assert "gobuild: compiling" in shown and "/compile " not in shown and "WORK=" not in shown
    wait_done(app, spec)


def test_a_real_build_log_shows_every_phase_in_order(app: Flask, built: tuple[BuildSpec, str]) -> None:
    spec, _ = built
    log = svc(app).store.read_blob(svc(app).store.result(spec).log)
    reader, phases = ProgressReader(), []
    for line in log.splitlines(keepends=True):
        if (p := reader.feed(line)).phase != (phases[-1] if phases else None):
            phases.append(p.phase)
    assert phases == [Phase.DOWNLOADING, Phase.COMPILING, Phase.LINKING, Phase.HASHING, Phase.LOGGING]
    p = reader.progress
    assert p.total is not None and p.compiled <= p.total and p.started is not None


# Links to other builds ----------------------------------------------------------------------------


def test_targets_are_grouped_by_os_with_a_filter_box(client: FlaskClient, built: tuple[BuildSpec, str]) -> None:
    spec, sum_ = built
    body = check_html_response(client.get(spec.result_link(sum_)))
    assert '<input type="search" class="filter" data-filter="col-targets"' in body and " hidden>" in body
    column = body[body.index('<ul id="col-targets">'):]
    column = column[:column.index("</ul>")]
    entries = re.findall(r'<li class="os">(\w+)</li>|>(\w+)/\w+</a>', column)
    groups: list[str] = []
    for heading, goos in entries:
        if heading:
            assert heading not in groups  # each OS once
            groups.append(heading)
        else:
            assert goos == groups[-1]  # listed under its own OS
    assert {"linux", "windows", "darwin"} <= set(groups)


def test_go_versions_column_offers_what_the_proxy_serves(tmp_path: Path, server_cache: Path) -> None:
    from gobuild.toolchains import host_platform, toolchain_module_version

    listed = ["go1.25.0", "go1.25.3", "go1.24.1", "go1.15.2", "go1.26rc1"]
    with ModuleProxy() as p:
        p.add("example.com/hello", "v1.0.0", hello_module("example.com/hello", "v1.0.0"))
        for v in listed:
            p.add("golang.org/toolchain", toolchain_module_version(v, *host_platform()), {"go.mod": "module x\n"})
        app = create_app(make_config(tmp_path / "data", p, cache_dir=str(server_cache)))
        spec = spec_of(f"example.com/hello@v1.0.0/linux-amd64-{GOVERSION}/")
        body = check_html_response(app.test_client().get(spec.link()))
    column = body[body.index('<ul id="col-goversions">'):]
    column = column[:column.index("</ul>")]
    shown = re.findall(r">(go[^<]+)</a>", column)
    # The newest release of each minor first, then the others; none too old to build a command.
    assert shown == [GOVERSION, "go1.25.3", "go1.24.1", "go1.26rc1", "go1.25.0"]
    assert "installs on use" in li_of(column, "go1.24.1") and "installs on use" not in li_of(column, GOVERSION)
    assert f'href="{spec.with_(goversion="go1.24.1").link()}"' in li_of(column, "go1.24.1")


# Error pages ---------------------------------------------------------------------------------------


def html_error(client: FlaskClient, path: str, status: int) -> str:
    r = client.get(path, headers={"Accept": "text/html"})
    assert r.status_code == status
    body = check_html_response(r)
    assert '<form class="try card" method="get" action="/">' in body  # the Try a module box
    return body


def test_error_page_for_a_version_that_does_not_exist_offers_the_nearest(client: FlaskClient) -> None:
    spec = spec_of(f"example.com/hello@v1.0.5/linux-amd64-{GOVERSION}/")
    body = html_error(client, spec.link(), 404)
    plain = body.index("That module, version or page does not exist")
    assert plain < body.index("HTTP 404 Not Found")  # plain words first, the jargon after
    for v in ("v1.0.0", "v1.1.0"):
        assert f'Version {v} exists: <a href="{spec.with_(version=v).link()}">' in body
    body = html_error(client, "/example.com/hello@v3.0.0", 404)
    assert 'Version v1.1.0 exists: <a href="/example.com/hello@v1.1.0">' in body and "v1.0.0 exists" not in body
    r = client.get(spec.link(), headers={"Accept": "text/plain"})  # scripts keep their one line
    assert r.mimetype == "text/plain" and r.get_data(as_text=True).startswith("404 - Not Found - ")


def test_error_page_for_a_package_path_names_its_module(client: FlaskClient) -> None:
    body = html_error(client, f"/example.com/multi/cmd/alpha@v0.3.0/linux-amd64-{GOVERSION}/", 404)
    assert "its module is example.com/multi. Its commands: <a href=\"/example.com/multi\">" in body


def test_error_page_of_a_failed_download_links_the_build_page(client: FlaskClient, app: Flask) -> None:
    failing = spec_of(f"example.com/replaced@v1.0.0/linux-amd64-{GOVERSION}/")
    svc(app).coordinator.start(failing).done.wait(120)
    body = html_error(client, failing.link() + failing.download_filename(), 422)
    assert body.index("This cannot be built") < body.index("go.mod has replace directives")
    assert f'with the whole log, and can retry it: <a href="{failing.link()}">' in body


def test_failed_build_page_has_no_download_hints_and_a_plain_text_log(client: FlaskClient, app: Flask) -> None:
    failing = spec_of(f"example.com/replaced@v1.0.0/linux-amd64-{GOVERSION}/")
    svc(app).coordinator.start(failing).done.wait(120)
    body = check_html_response(client.get(failing.link()))
    assert "Once built" not in body and "curl -fL" not in body and "<h2>Download</h2>" not in body
    assert '<a href="log">The log as plain text</a>' in body
    assert '<button type="submit" class="primary">Retry</button>' in body
    pending = check_html_response(client.get(failing.with_(goarch="riscv64").link()))
    assert "Once built" in pending  # kept where the build may still work
