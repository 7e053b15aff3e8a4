"""Resuming a long live build log: µs per poll and per reconnect near the end of a 5 MiB `go install -x` log.

    python bench/logresume.py [--mib 5] [--polls 20]

In one process, no server: a job whose live log (tests/logsample.py) holds --mib MiB. Poll: what
`live?offset=N` does (gobuild.web.live.fragment): a Reader at the offset the previous poll returned,
reading what is new, after the build appended one more package's lines (~650 bytes). Reconnect:
an event stream read the whole log and went away; a reader resumes at an offset up to 200 KiB
before the end (Last-Event-ID; timed as a poll reads, up to 1 MiB), a different one each time, each from
the checkpoints the stream left. Medians.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's gobuild and tests

from gobuild.builds import Job
from gobuild.spec import BuildSpec
from gobuild.store import Store
from gobuild.targets import DEFAULT_TARGETS
from gobuild.web import live
from gobuild.web.checkpoints import LogCheckpoints
from tests.logsample import package_block, xlog

SPEC = "example.com/m@v1.0.0/linux-amd64-go1.22.0/"
CHECKPOINTS = LogCheckpoints()  # the server's, one per app (Services.log_checkpoints)


def open_reader(job: Job, store: Store, offset: int, checkpoints: LogCheckpoints = CHECKPOINTS) -> live.Reader:
    """A reader as the live endpoints make one."""
    return live.Reader(job, store, offset, checkpoints)


def poll(job: Job, store: Store, offset: int, checkpoints: LogCheckpoints = CHECKPOINTS) -> int:
    """One poll of the fragment: the new whole lines after offset; the offset the next poll asks for."""
    reader = open_reader(job, store, offset, checkpoints)
    try:
        reader.read(whole_lines=True, limit=live.PAGE_LOG_LIMIT)
        return reader.offset
    finally:
        reader.close()


def stream_through(job: Job, store: Store) -> None:
    """An event stream from the start to the end of the log, which then goes away."""
    reader = open_reader(job, store, 0)
    try:
        while reader.read(whole_lines=True)[0]:
            pass
    finally:
        reader.close()


def as_the_stream_left(job: Job) -> LogCheckpoints:
    """A copy of the server's checkpoints of job (as the stream through the log left them)."""
    copy = LogCheckpoints()
    for offset in CHECKPOINTS.offsets(job):
        copy.record(job, CHECKPOINTS.nearest(job, offset))
    return copy


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=float, default=5.0)
    parser.add_argument("--polls", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "data")
        job = Job(BuildSpec.parse(SPEC, set(DEFAULT_TARGETS)), Path(tmp) / "job.log")
        size = int(args.mib * 2**20)
        data = xlog(size)
        job.log_path.write_bytes(data[:data.rfind(b"\n") + 1])
        offset = poll(job, store, 0)  # the page's first poll (1 MiB rendered) and its successors up to the end
        while offset < job.log_path.stat().st_size:
            offset = poll(job, store, offset)
        polls = []
        for i in range(args.polls):
            with open(job.log_path, "ab") as out:
                out.write(package_block(10_000 + i).encode())
            t0 = time.perf_counter()
            new = poll(job, store, offset)
            polls.append(time.perf_counter() - t0)
            assert new > offset
            offset = new
        stream_through(job, store)
        rng, end = random.Random(7), job.log_path.stat().st_size
        reconnects = []
        for _ in range(args.polls):  # each from the checkpoints the stream left, not those earlier trials added
            fresh = as_the_stream_left(job)
            back = rng.randrange(200 * 1024)
            reconnects.append(timed(partial(poll, job, store, end - back, fresh)))
    print(f"log {end / 2**20:.2f} MiB; poll at the previous poll's offset: "
          f"{statistics.median(polls) * 1e6:.0f} µs median of {len(polls)}; "
          f"reconnect (poll-style) up to 200 KiB before the end: {statistics.median(reconnects) * 1e6:.0f} µs median")


if __name__ == "__main__":
    main()
