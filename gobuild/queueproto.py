"""What the coordinator and its queue workers agree on: job ids, queue and key names, the upload's signature."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from .spec import BuildSpec

# Job data and results in Redis are JSON, never pickle: nothing read from Redis is unpickled. RQ's JSONSerializer
# by its import path (which every RQ 2 and 3 resolves), so that the upload endpoint imports this module without RQ.
SERIALIZER = "rq.serializers.JSONSerializer"

GENERAL_QUEUE = "gobuild"  # builds any Go version; workers limited to some versions take gobuild-<goversion>
UPLOAD_PATH = "/_queue/upload/"  # + job id: where a worker posts the binary it built
ALARMS_KEY = "gobuild:reproducibility-alarms"  # newest first, JSON objects
WORKER_FUNCTION = "gobuild.worker.build_job"
SIGNATURE_HEADER = "X-Gobuild-Signature"
SPEC_HEADER = "X-Gobuild-Spec"
MAX_OUTPUT = 256 * 1024  # most bytes of go's output a worker sends back with a failure (and the coordinator keeps)
_SIGNATURE = re.compile(r"[0-9a-f]{64}")


def job_id(spec: BuildSpec) -> str:
    """The RQ job id of spec's build, the same on every front door: requests for a spec share one job."""
    return "gobuild-" + spec.key()[:40]


def log_key(job: str) -> str:
    """The Redis stream holding the live log of a job."""
    return f"gobuild:log:{job}"


def queue_for_goversion(goversion: str) -> str:
    """The queue of the workers limited to goversion."""
    return f"{GENERAL_QUEUE}-{goversion}"


def signature(secret: bytes, job: str, token: str, spec: str, digest: str) -> str:
    """HMAC-SHA256 over the job, its run's token, its spec and the sha256 (hex) of the uploaded body.

    The token is new at each enqueue (the job id is the spec's and repeats): an upload captured on
    the wire cannot be replayed when the spec is built again."""
    return hmac.new(secret, f"{job}\n{token}\n{spec}\n{digest}".encode(), hashlib.sha256).hexdigest()


def new_token() -> str:
    """The token of a new run of a job (an argument of its worker function, signed with its upload)."""
    return secrets.token_hex(16)


def well_formed(given: str) -> bool:
    """Whether given has a signature's shape (64 lowercase hex digits): anything else is refused unread."""
    return _SIGNATURE.fullmatch(given) is not None


def signature_ok(secret: bytes, job: str, token: str, spec: str, digest: str, given: str) -> bool:
    # compare_digest takes only ASCII str: a header of any other text is refused before it.
    return well_formed(given) and hmac.compare_digest(signature(secret, job, token, spec, digest), given)
