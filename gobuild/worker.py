"""`gobuild worker`: runs the builds a coordinator queued (RQ on Redis) with this machine's toolchains and caches.

It stores nothing and logs nothing: it compiles (gobuild.compiler), streams go's output into the
job's Redis stream, and posts the binary to the coordinator signed with the shared secret; the
coordinator hashes it itself. RQ's forking worker runs each job in a work horse while the main
process reports a heartbeat; a job whose heartbeat stops is taken up again by another worker.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import requests
from rq import Queue, Worker, get_current_job
from rq.job import Job as RQJob

from . import gocmd, queueproto
from .compiler import CompileFailure, note
from .failures import BuildError
from .logstream import FileForwarder, LogStream
from .spec import BuildSpec, SpecError, check_paths, sum_from_digest
from .store import sha256_file

if TYPE_CHECKING:
    from .services import WorkerServices

log = logging.getLogger(__name__)

UPLOAD_TIMEOUT = 300.0  # seconds for posting one binary to the coordinator

_services: WorkerServices | None = None  # set before RQ forks its work horses, which inherit it


class GobuildWorker(Worker):
    """RQ's forking worker, with a heartbeat deadline of two heartbeats instead of RQ's fixed extra minute,
    so a dead worker's job is taken up again within a few heartbeats (see README, Builds on many machines)."""

    def get_heartbeat_ttl(self, job: RQJob, working_time: float = 0.0) -> int:
        return int(self.job_monitoring_interval) * 2


def run(services: WorkerServices) -> None:
    """Take jobs from the queues of this worker's Go versions (else the general queue) until stopped."""
    global _services
    _services = services
    names = [queueproto.queue_for_goversion(v) for v in services.goversions] or [queueproto.GENERAL_QUEUE]
    beat = services.heartbeat
    queues = [Queue(name, connection=services.conn, serializer=queueproto.SERIALIZER) for name in names]
    worker = GobuildWorker(queues, connection=services.conn, serializer=queueproto.SERIALIZER,
                           name=f"{socket.gethostname()}.{os.getpid()}", job_monitoring_interval=beat,
                           worker_ttl=beat + 15, maintenance_interval=beat)  # idle: looks for dead jobs every beat
    log.info("worker %s takes builds from %s", worker.name, ", ".join(names))
    worker.work(with_scheduler=False)


def build_job(spec_text: str, upload_url: str, token: str) -> dict[str, Any]:
    """The RQ job: build spec_text here and upload the binary (signed with this run's token); what happened."""
    s = _services
    job = get_current_job()
    if s is None or job is None:
        raise RuntimeError("build_job runs only inside `gobuild worker`")
    try:
        spec = BuildSpec.parse(spec_text, s.targets)
        check_paths(spec)  # as the coordinator's URLs do: nothing else reaches go
    except SpecError as e:
        return {"outcome": "error", "code": "unprocessable", "message": f"bad build spec: {e}"}
    if s.goversions and spec.goversion not in s.goversions:
        return {"outcome": "error", "code": "temporary", "message": f"worker cannot build {spec.goversion}"}
    log.info("building %s", spec)
    stream = LogStream(s.conn, queueproto.log_key(job.id))
    stream.append(f"worker {job.worker_name or socket.gethostname()} builds it\n".encode())
    with gocmd.command_home(s.compiler.paths, "build") as home, \
            tempfile.NamedTemporaryFile(dir=s.compiler.paths.cmds, suffix=".log") as log_file:
        out = cast(BinaryIO, log_file)
        with FileForwarder(Path(out.name), stream):
            try:
                binary = s.compiler.compile(spec, home, out)
            except CompileFailure as e:
                return {"outcome": "failure", "reason": e.reason, "error": e.error,
                        "output": e.output[-queueproto.MAX_OUTPUT:]}
            except BuildError as e:
                return {"outcome": "error", "code": e.code, "message": str(e)}
            digest, size = sha256_file(binary)
            sum_ = sum_from_digest(digest)
            note(out, f"\nbuilt {spec.exec_name}: {size} bytes, sum {sum_}; sending it to the coordinator\n")
        return _upload(s.secret, upload_url, job.id, token, spec, binary, digest.hex(), sum_)


def _upload(secret: bytes, base: str, job_id: str, token: str, spec: BuildSpec, binary: Path,
            sha256_hex: str, sum_: str) -> dict[str, Any]:
    """Post the binary, signed over its sha256; the coordinator hashes what it received itself."""
    headers = {queueproto.SPEC_HEADER: str(spec),
               queueproto.SIGNATURE_HEADER: queueproto.signature(secret, job_id, token, str(spec), sha256_hex)}
    with open(binary, "rb") as f:
        resp = requests.post(base.rstrip("/") + queueproto.UPLOAD_PATH + job_id, data=f, headers=headers,
                             timeout=UPLOAD_TIMEOUT)
    if resp.status_code >= 500:
        resp.raise_for_status()  # the coordinator is in trouble: RQ retries the job
    if resp.status_code != 200:
        return {"outcome": "error", "code": "temporary",
                "message": f"the coordinator refused the binary: {resp.text.strip()[:500]}"}
    return {"outcome": "uploaded", "sum": sum_}
