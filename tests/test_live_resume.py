"""Resuming a live log from a checkpoint: the same HTML, offsets and progress as from byte 0, for less work."""

from __future__ import annotations

import random
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from gobuild.builds import Job
from gobuild.phases import Progress
from gobuild.spec import BuildSpec
from gobuild.store import Store
from gobuild.targets import DEFAULT_TARGETS
from gobuild.web import live
from gobuild.web.checkpoints import LogCheckpoints
from tests.logsample import count_reads, xlog

SIZE = 300_000
Answer = tuple[bytes, str, int, Progress]  # a reader's next read, its HTML, its offset after, its progress


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "data")


@pytest.fixture
def job(tmp_path: Path) -> Job:
    """A running job whose live log holds SIZE bytes, the last line cut short."""
    job = Job(BuildSpec.parse("example.com/m@v1.0.0/linux-amd64-go1.22.0/", set(DEFAULT_TARGETS)), tmp_path / "job.log")
    job.log_path.write_bytes(xlog(SIZE))
    return job


@pytest.fixture
def read_bytes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the log reads made from now on."""
    return count_reads(monkeypatch)


def answer(job: Job, store: Store, offset: int, checkpoints: LogCheckpoints, whole_lines: bool = True,
           limit: int = live.CHUNK) -> Answer:
    """What a reader resumed at offset sends first (as the stream and the poll read)."""
    reader = live.Reader(job, store, offset, checkpoints)
    try:
        data, html = reader.read(whole_lines, limit)
        return data, str(html), reader.offset, reader.progress.progress
    finally:
        reader.close()


def from_zero(job: Job, store: Store, offset: int, whole_lines: bool = True, limit: int = live.CHUNK) -> Answer:
    return answer(job, store, offset, LogCheckpoints(), whole_lines, limit)


def interesting_offsets(log: bytes) -> list[int]:
    """Line starts, mid-line, in a here-document, in and after the long line, in a cut character, the end, past it."""
    heredoc = log.index(b"# import config", 100_000)
    long_line = log.index(b"x" * 1000) - len("cd /src/")
    long_end = log.index(b"# a very long line\n") + len("# a very long line\n")
    return [0, 1, heredoc, heredoc + 3, log.index(b"EOF\n", heredoc), log.index(b"\r\n", heredoc) + 1,
            log.index("ü".encode(), heredoc) + 1, long_line, long_line + 5, long_line + 65_536, long_end,
            long_end + 3, log.rfind(b"\n") + 1, len(log) - 1, len(log), len(log) + 100]


def test_resumed_readers_answer_as_readers_from_zero(job: Job, store: Store) -> None:
    log = job.log_path.read_bytes()
    offsets = interesting_offsets(log)
    checkpoints = LogCheckpoints()
    for offset in offsets:  # readers that read on, in whole lines or not, leave checkpoints behind
        for whole_lines in (True, False):
            reader = live.Reader(job, store, offset, checkpoints)
            while reader.read(whole_lines)[0]:
                pass
            reader.close()
    rng = random.Random(1)
    for offset in offsets + [rng.randrange(len(log)) for _ in range(40)]:
        for whole_lines, limit in ((True, live.CHUNK), (False, live.CHUNK), (True, live.PAGE_LOG_LIMIT)):
            want = from_zero(job, store, offset, whole_lines, limit)
            assert answer(job, store, offset, checkpoints, whole_lines, limit) == want, (offset, whole_lines, limit)


def test_a_line_read_in_pieces_leaves_the_checkpoint_reading_from_zero_gives(job: Job, store: Store) -> None:
    log = job.log_path.read_bytes()
    long_end = log.index(b"# a very long line\n") + len("# a very long line\n")  # opens a here-document
    checkpoints = LogCheckpoints()
    reader = live.Reader(job, store, long_end + 3 - 2 * live.CHUNK, checkpoints)
    reader.read(whole_lines=False)  # up to the long line's start and into it
    reader.read(whole_lines=False)  # its rest, and into the here-document
    reader.close()
    assert long_end in checkpoints.offsets(job)
    for offset in (long_end, long_end + 3, long_end + 40):
        assert answer(job, store, offset, checkpoints) == from_zero(job, store, offset)


def test_a_poll_reads_only_what_is_new(job: Job, store: Store, read_bytes: list[int]) -> None:
    checkpoints = LogCheckpoints()
    _, _, end, _ = answer(job, store, 0, checkpoints, limit=live.PAGE_LOG_LIMIT)
    with open(job.log_path, "ab") as out:
        out.write(b"ing the last line\nand one more\n")
    read_bytes.clear()
    data, _, _, progress = answer(job, store, end, checkpoints, limit=live.PAGE_LOG_LIMIT)
    assert data == xlog(SIZE)[end:] + b"ing the last line\nand one more\n"
    assert sum(read_bytes) == len(data)  # not the 300 kB before it
    assert progress == from_zero(job, store, end, limit=live.PAGE_LOG_LIMIT)[3]


def test_a_reconnect_mid_stream_reads_at_most_about_a_spacing(job: Job, store: Store, read_bytes: list[int]) -> None:
    size = 4 * live.CHECKPOINT_SPACING  # the stream reads its line longer than a read in pieces
    job.log_path.write_bytes(xlog(size))
    checkpoints = LogCheckpoints()
    reader = live.Reader(job, store, 0, checkpoints)
    while reader.read()[0]:  # a stream that sent everything, then went away
        pass
    reader.close()
    for back in (10_000, 300_000, 600_000):
        want = from_zero(job, store, size - back)
        read_bytes.clear()
        assert answer(job, store, size - back, checkpoints) == want
        assert sum(read_bytes) <= live.CHECKPOINT_SPACING + 2 * live.CHUNK, back


def test_progress_of_a_long_log_resumes_too(job: Job, store: Store, read_bytes: list[int],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    services = SimpleNamespace(store=store, log_checkpoints=LogCheckpoints())
    monkeypatch.setattr(live, "services", lambda: services)
    first = live.progress_of(job)
    read_bytes.clear()
    assert live.progress_of(job) == first
    assert sum(read_bytes) < live.CHUNK
    assert first.compiled > 400 and first == from_zero(job, store, SIZE)[3]


def test_checkpoints_stay_few_and_go_with_the_job(job: Job, store: Store) -> None:
    checkpoints = LogCheckpoints(per_job=3, jobs=2)
    for offset in range(0, SIZE, 20_000):
        answer(job, store, offset, checkpoints)
    assert len(checkpoints.offsets(job)) == 3
    job.done.set()
    answer(job, store, 0, checkpoints)
    assert checkpoints.offsets(job) == []


def test_readers_on_many_threads_agree(job: Job, store: Store) -> None:
    checkpoints = LogCheckpoints(per_job=4)
    offsets = list(range(0, SIZE, 7_777))
    want = {offset: from_zero(job, store, offset) for offset in offsets}
    wrong: list[int] = []

    def poll(rng: random.Random) -> None:
        for offset in rng.sample(offsets, len(offsets)):
            if answer(job, store, offset, checkpoints) != want[offset]:
                wrong.append(offset)

    threads = [threading.Thread(target=poll, args=(random.Random(i),)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []
