"""The coordinator's upload endpoint and admin page against a real redis-server: who may upload what,
the sum is the coordinator's own, two different sums for one spec are an alarm and nothing is logged;
a worker limited to a Go version gets that version's builds and shows on the admin page; the log
stream's byte offsets; the queue's config errors."""

from __future__ import annotations

import hashlib
import io
import json
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job as RQJob
from rq.job import JobStatus

from gobuild import config as configmod
from gobuild import queue as queuemod
from gobuild import queueproto
from gobuild.builds import Unreproducible
from gobuild.failures import Busy, QueueUnreachable, TemporaryFailure
from gobuild.logstream import LogStream
from gobuild.queue import BuildQueue
from gobuild.services import build_services
from gobuild.spec import BuildSpec, sum_of
from gobuild.store import Store
from gobuild.web import create_app
from gobuild.web.admin import create_admin_app
from gobuild.web.current import services_of
from tests.conftest import GOROOT, GOVERSION, make_config
from tests.modproxy import ModuleProxy
from tests.queuehelp import SECRET, redis_server, secret_file, start_worker, stop, wait_for_workers
from tests.realserver import free_port, real_server

SPEC = BuildSpec("example.com/up", "v1.0.0", "/", "linux", "amd64", GOVERSION)
JOB = queueproto.job_id(SPEC)
TOKEN = "a-run-token-0001"


@pytest.fixture(scope="module")
def queue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def app(queue: str, tmp_path: Path, modproxy: ModuleProxy) -> Flask:
    redis.Redis.from_url(queue).flushall()
    return create_app(make_config(tmp_path / "data", modproxy, queue=queue,
                                  queue_secret_file=str(secret_file(tmp_path)), queue_max_upload_mb=1))


def start_job(app: Flask, token: str = TOKEN) -> None:
    """The job of SPEC as RQ has it while a worker runs it (on a queue no worker takes from)."""
    conn = services_of(app).queue.conn  # type: ignore[union-attr]
    nobody = Queue("nobody", connection=conn, serializer=queueproto.SERIALIZER)
    job = nobody.enqueue(queueproto.WORKER_FUNCTION, str(SPEC), "http://unused", token, job_id=JOB)
    job.set_status(JobStatus.STARTED)


def sign(body: bytes, secret: str = SECRET, job: str = JOB, spec: str = str(SPEC), token: str = TOKEN) -> str:
    return queueproto.signature(secret.encode(), job, token, spec, hashlib.sha256(body).hexdigest())


def upload(client: FlaskClient, body: bytes, secret: str = SECRET, job: str = JOB, spec: str = str(SPEC),
           token: str = TOKEN) -> object:
    sig = sign(body, secret, job, spec, token)
    return client.post(queueproto.UPLOAD_PATH + job, data=body,
                       headers={queueproto.SIGNATURE_HEADER: sig, queueproto.SPEC_HEADER: spec})


def test_only_signed_uploads_for_running_jobs_are_taken(app: Flask) -> None:
    client = app.test_client()
    r = client.post(queueproto.UPLOAD_PATH + JOB, data=b"binary")
    assert r.status_code == 401
    assert upload(client, b"binary").status_code == 409  # signed, but no such build runs
    start_job(app)
    assert upload(client, b"binary", secret="another-secret-of-enough-length").status_code == 403
    r = client.post(queueproto.UPLOAD_PATH + JOB, data=b"binary", headers={
        queueproto.SIGNATURE_HEADER: sign(b"other"),
        queueproto.SPEC_HEADER: str(SPEC)})
    assert r.status_code == 403  # the signature covers the body
    assert upload(client, b"x" * (2 << 20)).status_code == 413
    other = SPEC.with_(goarch="arm64")
    assert upload(client, b"binary", spec=str(other)).status_code == 409  # the job is not this spec's
    assert services_of(app).store.candidate(SPEC) is None


def test_the_coordinator_hashes_what_it_received(app: Flask) -> None:
    start_job(app)
    r = upload(app.test_client(), b"the binary")
    assert r.status_code == 200, r.get_data(as_text=True)  # type: ignore[attr-defined]
    candidate = services_of(app).store.candidate(SPEC)
    assert candidate is not None and candidate.sum == sum_of(b"the binary") == r.json["sum"]  # type: ignore[attr-defined]
    assert services_of(app).store.read_blob(candidate.binary) == b"the binary"


def test_two_different_sums_are_an_alarm_and_nothing_is_logged(app: Flask) -> None:
    s = services_of(app)
    client = app.test_client()
    start_job(app)
    assert upload(client, b"first build").status_code == 200
    assert upload(client, b"first build").status_code == 200  # the same bytes again: fine
    r = upload(client, b"second build")
    assert r.status_code == 409 and b"not reproducible" in r.data  # type: ignore[attr-defined]
    assert s.store.candidate(SPEC) is None and s.store.result(SPEC) is None and s.tlog.size() == 0
    metrics = s.metrics.exposition().decode()
    assert f'gobuild_reproducibility_alarms_total{{goarch="amd64",goos="linux",goversion="{GOVERSION}"}} 1.0' \
        in metrics
    page = create_admin_app(s).test_client().get("/").get_data(as_text=True)
    assert "Reproducibility alarms" in page and sum_of(b"first build") in page and sum_of(b"second build") in page


def test_a_worker_limited_to_a_go_version_gets_its_builds_and_shows_on_the_admin_page(
        app: Flask, queue: str, tmp_path: Path, modproxy: ModuleProxy) -> None:
    worker = start_worker(tmp_path, "limited", queue, modproxy.url, worker_goversions=[GOVERSION])
    try:
        wait_for_workers(queue, 1)
        build_queue = services_of(app).queue
        assert build_queue is not None
        assert build_queue._queue_name(SPEC) == f"gobuild-{GOVERSION}"
        assert build_queue._queue_name(SPEC.with_(goversion="go1.22.0")) == "gobuild"  # no worker of its own
        page = create_admin_app(services_of(app)).test_client().get("/").get_data(as_text=True)
        assert "Queue workers (1)" in page and f"gobuild-{GOVERSION}" in page and f".{worker.pid}<" in page
    finally:
        stop(worker)


def test_a_worker_without_a_queue_is_refused_clearly(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text("{}")
    out = subprocess.run([sys.executable, "-m", "gobuild", "worker", "--config", str(tmp_path / "c.json")],
                         capture_output=True, text=True, env={"PYTHONPATH": str(Path(__file__).parent.parent),
                                                              "PATH": "/usr/bin:/bin", "GOPROXY": "off"})
    assert out.returncode == 2 and "a worker needs queue" in out.stderr and "Traceback" not in out.stderr


def test_the_log_stream_resumes_at_any_byte_whoever_appends(queue: str) -> None:
    conn = redis.Redis.from_url(queue)
    first, second = LogStream(conn, "gobuild:log:t"), LogStream(conn, "gobuild:log:t")  # e.g. two workers
    first.delete()
    assert first.append(b"worker A builds it\n") == 19
    assert second.append(b"worker B builds it\n") == 38
    assert first.whole() == b"worker A builds it\nworker B builds it\n"
    data, last = first.read("0-19")  # an SSE reader that had the first 19 bytes (Last-Event-ID: 19)
    assert data == b"worker B builds it\n" and last == "0-38"
    assert first.read(last) == (b"", last)
    big = bytes(range(256)) * 1024  # more than one entry
    assert second.append(big) == 38 + len(big) and first.whole()[38:] == big


@pytest.mark.parametrize(("changes", "message"), [
    ({"queue": "http://127.0.0.1:6379"}, "must be a redis://"),
    ({"queue": "redis://127.0.0.1:6379/0"}, "needs queue_secret_file"),
    ({"queue": "redis://127.0.0.1:6379/0", "queue_secret_file": "/nonexistent/secret"}, "queue_secret_file"),
    ({"queue_heartbeat_seconds": 0}, "queue_heartbeat_seconds"),
    ({"worker_goversions": ("1.26",)}, "worker_goversions"),
])
def test_queue_config_errors_are_one_line(tmp_path: Path, modproxy: ModuleProxy, changes: dict[str, object],
                                          message: str) -> None:
    with pytest.raises(configmod.ConfigError, match=message):
        build_services(make_config(tmp_path / "data", modproxy, **changes))
    assert not (tmp_path / "data").exists()  # checked before anything is created


def test_a_short_secret_is_refused(tmp_path: Path, modproxy: ModuleProxy) -> None:
    (tmp_path / "secret").write_text("short\n")
    with pytest.raises(configmod.ConfigError, match="at least 16 characters"):
        build_services(make_config(tmp_path / "data", modproxy, queue="redis://127.0.0.1:1/0",
                                   queue_secret_file=str(tmp_path / "secret")))


def test_a_build_waiting_for_a_worker_shows_its_place(app: Flask) -> None:
    build_queue = services_of(app).queue
    assert build_queue is not None
    conn = build_queue.conn
    waiting = Queue(queueproto.GENERAL_QUEUE, connection=conn, serializer=queueproto.SERIALIZER)  # no worker runs
    other = SPEC.with_(goarch="arm64")
    for spec in (other, SPEC):
        waiting.enqueue(queueproto.WORKER_FUNCTION, str(spec), "http://unused", TOKEN,
                        job_id=queueproto.job_id(spec))
    assert build_queue.position(other) == 1 and build_queue.position(SPEC) == 2
    assert build_queue.position(SPEC.with_(goarch="386")) == 0  # no such job


def test_past_max_queued_new_builds_are_refused_for_now(app: Flask) -> None:
    s = services_of(app)
    assert s.queue is not None
    small = BuildQueue(s.queue.conn, s.store, "http://unused", 60, max_queued=2)
    small.check_available()
    waiting = Queue(queueproto.GENERAL_QUEUE, connection=small.conn, serializer=queueproto.SERIALIZER)
    for arch in ("arm64", "386"):
        spec = SPEC.with_(goarch=arch)
        waiting.enqueue(queueproto.WORKER_FUNCTION, str(spec), "http://unused", TOKEN,
                        job_id=queueproto.job_id(spec))
    with pytest.raises(Busy, match="2 builds wait for a worker"):
        small.check_available()


@pytest.mark.parametrize("signature", ["é" * 64, "z" * 64, "ab", "0" * 65])
def test_a_malformed_signature_is_refused_not_a_crash(app: Flask, signature: str) -> None:
    start_job(app)
    r = app.test_client().post(queueproto.UPLOAD_PATH + JOB, data=b"binary", headers={
        queueproto.SIGNATURE_HEADER: signature, queueproto.SPEC_HEADER: str(SPEC)})
    assert r.status_code == 403, r.get_data(as_text=True)
    assert services_of(app).store.candidate(SPEC) is None


def test_a_redis_error_while_following_a_job_is_not_taken_for_its_end(tmp_path: Path) -> None:
    with redis_server(tmp_path) as url:
        conn = redis.Redis.from_url(url)
        job = Queue("nobody", connection=conn, serializer=queueproto.SERIALIZER).enqueue(
            queueproto.WORKER_FUNCTION, str(SPEC), "http://unused", TOKEN, job_id=JOB)
        assert queuemod._status(job) == JobStatus.QUEUED
        job.delete()
        assert queuemod._status(job) is None  # gone: ended
        conn.shutdown(nosave=True)
        with pytest.raises(redis.RedisError):
            queuemod._status(job)  # unreachable: BuildQueue.build answers 503, not "the job ended"


def test_every_queue_call_the_web_makes_turns_a_redis_error_into_queue_unreachable(tmp_path: Path) -> None:
    # The upload endpoint and the admin page catch QueueUnreachable (503, or a line on the admin page); a raw
    # redis error from any of these would be a 500 with a traceback instead.
    with redis_server(tmp_path) as url:
        conn = redis.Redis.from_url(url)
        alarms: list[BuildSpec] = []
        queue = BuildQueue(conn, Store(tmp_path / "data"), "http://unused", 60.0, on_alarm=alarms.append)
        assert queue.running(JOB) is None and queue.workers() == [] and queue.alarms() == []
        conn.shutdown(nosave=True)
        calls = {"running": lambda: queue.running(JOB), "log_of": lambda: queue.log_of(SPEC),
                 "note": lambda: queue.note(SPEC, "a line\n"), "alarm": lambda: queue.alarm(SPEC, "a", "b"),
                 "alarms": queue.alarms, "workers": queue.workers, "check_available": queue.check_available}
        for name, call in calls.items():
            with pytest.raises(QueueUnreachable) as e:
                call()
            assert e.value.status == 503 and url.split("//")[-1].split("/")[0] not in str(e.value), name
        assert queue.position(SPEC) == 0 and alarms == [SPEC]  # the alarm is counted even so


def test_the_queue_s_password_and_address_are_never_shown(tmp_path: Path, modproxy: ModuleProxy) -> None:
    port = free_port()  # nothing listens there
    url = f"redis://:hunter2-redis-password@127.0.0.1:{port}/0"
    app = create_app(make_config(tmp_path / "data", modproxy, queue=url, queue_secret_file=str(secret_file(tmp_path))))
    r = upload(app.test_client(), b"binary")
    assert r.status_code == 503 and r.get_data(as_text=True) == "the build queue is unreachable\n"  # type: ignore[attr-defined]
    (tmp_path / "worker.json").write_text(json.dumps({"queue": url, "queue_secret_file": str(secret_file(tmp_path)),
                                                      "data_dir": str(tmp_path / "worker"), "goproxy": modproxy.url,
                                                      "environment": ["GOSUMDB=off"],
                                                      "toolchains": {GOVERSION: GOROOT}}))
    out = subprocess.run([sys.executable, "-m", "gobuild", "worker", "--config", str(tmp_path / "worker.json")],
                         capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(Path(__file__).parent.parent), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 2 and "unreachable" in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert "hunter2-redis-password" not in out.stderr and "redis://:xxxxx@127.0.0.1" in out.stderr, out.stderr


class CountingBody(io.BytesIO):
    """A request body (wsgi.input) that notes how many bytes the view read."""

    taken = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.taken += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        n = super().readinto(buffer)
        self.taken += n
        return n


def post_counting(app: Flask, signature: str, body: bytes, length: int) -> tuple[int, int]:
    """Post body to JOB's upload as waitress hands it on (Content-Length: length); the status and bytes read."""
    stream = CountingBody(body)
    r = app.test_client().post(queueproto.UPLOAD_PATH + JOB, environ_overrides={
        "wsgi.input": stream, "CONTENT_LENGTH": str(length)}, headers={
        queueproto.SIGNATURE_HEADER: signature, queueproto.SPEC_HEADER: str(SPEC)})
    return r.status_code, stream.taken


def test_an_upload_is_refused_before_its_body_is_read(app: Flask) -> None:
    body = b"binary"
    sig = sign(body)
    assert post_counting(app, sig, body, len(body)) == (409, 0)  # no such build runs
    start_job(app)
    assert post_counting(app, "not a signature", body, len(body)) == (403, 0)
    assert post_counting(app, sig, body, 2 << 20) == (413, 0)
    assert post_counting(app, sig, body, len(body)) == (200, len(body))


def head_only(base: str, path: str, length: int) -> str:
    """The status line the server answers a POST whose head announces length bytes that never come."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {length}\r\n\r\n".encode())
        return sock.recv(4096).decode(errors="replace").split("\r\n")[0]


def test_waitress_refuses_a_big_body_before_buffering_it(queue: str, tmp_path: Path, modproxy: ModuleProxy) -> None:
    (tmp_path / "plain").mkdir()
    with real_server(tmp_path / "plain", modproxy.url) as base:  # no queue: nothing posts more than a form
        assert head_only(base, "/", 64 << 20) == "HTTP/1.1 413 Request Entity Too Large"
    (tmp_path / "coordinator").mkdir()
    with real_server(tmp_path / "coordinator", modproxy.url, queue=queue, queue_max_upload_mb=1,
                     queue_secret_file=str(secret_file(tmp_path))) as base:
        assert head_only(base, queueproto.UPLOAD_PATH + JOB, 2 << 20) == "HTTP/1.1 413 Request Entity Too Large"


def test_a_captured_upload_is_refused_on_a_later_run_of_its_job(app: Flask) -> None:
    s = services_of(app)
    start_job(app, token="the-first-run")
    captured = {queueproto.SIGNATURE_HEADER: sign(b"old bytes", token="the-first-run"),
                queueproto.SPEC_HEADER: str(SPEC)}  # a genuine upload of the first run, seen on the wire
    RQJob.fetch(JOB, connection=s.queue.conn).delete()  # type: ignore[union-attr]  # that run ended
    start_job(app, token="the-second-run")  # the spec is built again: its job id is the same
    r = app.test_client().post(queueproto.UPLOAD_PATH + JOB, data=b"old bytes", headers=captured)
    assert r.status_code == 403 and s.store.candidate(SPEC) is None
    assert upload(app.test_client(), b"new bytes", token="the-second-run").status_code == 200  # type: ignore[attr-defined]


def test_a_candidate_an_alarm_dropped_is_not_logged_by_its_follower(app: Flask) -> None:
    s = services_of(app)
    start_job(app)
    assert upload(app.test_client(), b"first build").status_code == 200  # type: ignore[attr-defined]
    followed = s.store.candidate(SPEC)  # what BuildQueue.build hands the Builder, which then asks its verifiers
    assert followed is not None
    assert upload(app.test_client(), b"second build").status_code == 409  # type: ignore[attr-defined]  # the alarm
    with pytest.raises(Unreproducible):
        s.builder._publish(SPEC, followed)  # the follower, done verifying, goes on to log
    assert s.tlog.size() == 0 and s.store.result(SPEC) is None


def test_with_no_worker_a_build_fails_as_temporary_after_its_deadline_and_the_next_enqueues_anew(app: Flask) -> None:
    s = services_of(app)
    assert s.queue is not None
    short = BuildQueue(s.queue.conn, s.store, "http://unused", job_timeout=1, wait_seconds=1)
    with tempfile.TemporaryFile() as out, pytest.raises(TemporaryFailure, match="no worker took the build in 2 s"):
        short.build(SPEC, out)  # no worker runs
    with pytest.raises(NoSuchJobError):
        RQJob.fetch(JOB, connection=short.conn)  # given up: not left for later requests to join
    job = short._job(SPEC)  # the next request
    assert job.get_status() == JobStatus.QUEUED and job.origin == queueproto.GENERAL_QUEUE


def test_a_build_waiting_for_a_go_version_s_worker_that_left_goes_to_the_general_queue(app: Flask) -> None:
    s = services_of(app)
    assert s.queue is not None
    own = Queue(queueproto.queue_for_goversion(GOVERSION), connection=s.queue.conn, serializer=queueproto.SERIALIZER)
    own.enqueue(queueproto.WORKER_FUNCTION, str(SPEC), "http://unused", TOKEN, job_id=JOB)  # its worker is gone
    short = BuildQueue(s.queue.conn, s.store, "http://unused", job_timeout=1, wait_seconds=2)
    with tempfile.TemporaryFile() as out, pytest.raises(TemporaryFailure, match="no worker took the build"):
        short.build(SPEC, out)
    assert JOB.encode() not in s.queue.conn.lrange(f"rq:queue:{own.name}", 0, -1)
    assert "moved to the general queue" in short.log_of(SPEC).decode()


def test_a_worker_refuses_a_spec_against_go_s_path_rules(queue: str, tmp_path: Path, modproxy: ModuleProxy) -> None:
    conn = redis.Redis.from_url(queue)
    conn.flushall()
    bad = f"example.com/x~1@v1.0.0/linux-amd64-{GOVERSION}/"  # parses as a spec; Go refuses the path
    job = Queue(queueproto.GENERAL_QUEUE, connection=conn, serializer=queueproto.SERIALIZER).enqueue(
        queueproto.WORKER_FUNCTION, bad, "http://unused", TOKEN, job_id="gobuild-bad-path")
    worker = start_worker(tmp_path, "strict", queue, modproxy.url)
    try:
        deadline = time.monotonic() + 120
        while job.get_status() not in (JobStatus.FINISHED, JobStatus.FAILED) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop(worker)
    outcome = job.latest_result().return_value  # type: ignore[union-attr]
    assert outcome["code"] == "unprocessable" and "bad module path" in outcome["message"], outcome
    assert "go mod download" not in LogStream(conn, queueproto.log_key(job.id)).whole().decode()
