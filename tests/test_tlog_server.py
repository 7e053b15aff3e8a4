"""Tests for gobuild.tlog.server: the on-disk log against merkle, Go's vectors, crashes and races.

Vectors: tests/testdata/tlog/go-tlog-vectors.json (tiles and signed head of the 1000-record
tree of "record <i>\\n") and tests/testdata/tlog/gobuild-instance/ (original gobuild tiles).
"""

from __future__ import annotations

import base64
import hashlib
import json
import multiprocessing
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gobuild.tlog import merkle, note, server
from gobuild.tlog.merkle import HashList, Tree
from gobuild.tlog.server import (
    BadTilePath,
    InvalidRecordError,
    LogCorruptError,
    RecordNotFound,
    TileNotFound,
    TransparencyLog,
)

ROOT = Path(__file__).resolve().parent.parent
TESTDATA = Path(__file__).resolve().parent / "testdata" / "tlog"
VECTORS = json.loads((TESTDATA / "go-tlog-vectors.json").read_text())
SKEY = VECTORS["note"]["signer_key"]
VKEY = VECTORS["note"]["verifier_key"]


def record(i: int) -> bytes:
    """Return the vector record text for record i."""
    return f"record {i}\n".encode()


def expected_hashes(records: list[bytes]) -> HashList:
    """Return the stored hashes merkle computes for records."""
    hl = HashList()
    for n, text in enumerate(records):
        hl.hashes.extend(merkle.stored_hashes(n, text, hl))
    return hl


def check_log(log_dir: Path, records: list[bytes]) -> None:
    """Assert the files of log_dir hold exactly records, with the right hashes and index."""
    assert (log_dir / "records").read_bytes() == b"".join(records)
    assert (log_dir / "hashes").read_bytes() == b"".join(expected_hashes(records).hashes)
    ends, total = [], 0
    for text in records:
        total += len(text)
        ends.append(total.to_bytes(8, "big"))
    assert (log_dir / "record-index").read_bytes() == b"".join(ends)


@pytest.fixture
def no_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip fsync for tests that only need many records (fsync is ~2 ms each here)."""
    monkeypatch.setattr(server.os, "fsync", lambda fd: None)


@pytest.fixture
def log(tmp_path: Path) -> Iterator[TransparencyLog]:
    """An empty log signed with the vector key."""
    with TransparencyLog(tmp_path / "tlog", SKEY) as tl:
        yield tl


@pytest.fixture(scope="module")
def log1000(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TransparencyLog]:
    """The 1000-record vector log."""
    mp = pytest.MonkeyPatch()
    mp.setattr(server.os, "fsync", lambda fd: None)
    tl = TransparencyLog(tmp_path_factory.mktemp("log1000"), SKEY)
    for i in range(1000):
        assert tl.append(record(i)) == i
    mp.undo()
    yield tl
    tl.close()


# --- against merkle and the vectors ----------------------------------------------------------


def test_empty_log(log: TransparencyLog) -> None:
    assert log.size() == 0
    # RFC 6962's empty root, SHA-256 of nothing, as golang.org/x/mod's tlog has it today: the
    # original's client takes any other hash for the empty tree as a fork.
    assert log.tree() == Tree(0, hashlib.sha256(b"").digest())
    opened = note.open_note(log.signed_tree_head(), [note.Verifier.parse(VKEY)])
    assert opened.text == "go.sum database tree\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
    with pytest.raises(RecordNotFound):
        log.record(0)
    with pytest.raises(RecordNotFound):
        log.lookup_response(0)
    with pytest.raises(TileNotFound):
        log.tile("8/0/000.p/1")
    with pytest.raises(TileNotFound):
        log.tile("8/data/000.p/1")


def test_append_and_read_back(log: TransparencyLog, tmp_path: Path) -> None:
    records = [f"example.com/m v1.0.{i} / linux amd64 go1.27.3 {100 + i} 0abc \n".encode() for i in range(20)]
    for i, text in enumerate(records):
        assert log.append(text) == i
        assert log.size() == i + 1
        hl = expected_hashes(records[: i + 1])
        assert log.tree() == Tree(i + 1, merkle.tree_hash(i + 1, hl))
    assert [log.record(i) for i in range(20)] == records
    check_log(tmp_path / "tlog", records)
    assert log.find(records[7]) == 7
    assert log.find(b"absent\n") is None
    with pytest.raises(RecordNotFound):
        log.record(20)
    with pytest.raises(RecordNotFound):
        log.record(-1)


def test_append_rejects_invalid_records(log: TransparencyLog) -> None:
    for bad in (b"", b"no newline", b"two\n\nblank\n", b"ctl\x01\n", b"\xff\n"):
        with pytest.raises(InvalidRecordError):
            log.append(bad)
    assert log.size() == 0


def test_vector_tree_head_is_byte_identical(log1000: TransparencyLog) -> None:
    assert log1000.signed_tree_head().decode() == VECTORS["note"]["signed_tree_head_1000"]
    assert log1000.tree().hash == base64.b64decode(VECTORS["tree_hash"]["1000"])


@pytest.mark.parametrize("path", sorted(VECTORS["tiles_h8_tree1000"]))
def test_vector_tiles_are_byte_identical(log1000: TransparencyLog, path: str) -> None:
    content, full = log1000.tile(path[len("tile/") :])
    assert content == base64.b64decode(VECTORS["tiles_h8_tree1000"][path])
    assert full == (".p/" not in path)


def test_every_tile_matches_merkle(log1000: TransparencyLog) -> None:
    hl = expected_hashes([record(i) for i in range(1000)])
    for h in (1, 2, 5, 8):
        for t in merkle.new_tiles(h, 0, 1000):
            assert log1000.tile(t.path()[len("tile/") :]) == (merkle.read_tile_data(t, hl), t.is_full)
    # Narrower (older) partial tiles stay available: clients fetch the width of their tree.
    for w in (1, 17, 231):
        t = merkle.Tile(8, 0, 3, w)
        assert log1000.tile(t.path()[5:])[0] == merkle.read_tile_data(t, hl)


def test_data_tiles(log1000: TransparencyLog) -> None:
    content, full = log1000.tile("8/data/001")
    assert full
    assert content == b"".join(f"{i}\nrecord {i}\n\n".encode() for i in range(256, 512))
    content, full = log1000.tile("8/data/003.p/232")
    assert not full
    assert content.startswith(b"768\nrecord 768\n\n") and content.endswith(b"999\nrecord 999\n\n")
    assert log1000.tile("1/data/499")[0] == b"998\nrecord 998\n\n999\nrecord 999\n\n"
    with pytest.raises(TileNotFound):
        log1000.tile("8/data/003.p/233")
    with pytest.raises(TileNotFound):
        log1000.tile("8/data/004.p/1")


def test_tiles_beyond_the_tree(log1000: TransparencyLog) -> None:
    for path in ("8/0/003", "8/0/003.p/233", "8/0/004.p/1", "8/1/000.p/4", "8/1/000", "8/2/000.p/1",
                 "8/63/000.p/1", "30/0/000.p/1001", "1/9/001", "1/10/000.p/1", "8/0/x001/x234/567"):
        with pytest.raises(TileNotFound):
            log1000.tile(path)
    # The one level-9 node of the tree is there: the root of records 0..511.
    hl = expected_hashes([record(i) for i in range(512)])
    assert log1000.tile("1/9/000.p/1") == (merkle.tree_hash(512, hl), False)


@pytest.mark.parametrize("path", ["", "8", "8/0", "8/0/0", "8/0/000.p/256", "8/0/000.p/0", "x/0/000",
                                  "8/-1/000", "0/0/000", "31/0/000", "8/0/000/", "/8/0/000", "8/0/../000",
                                  "8/0/000.p/011", "8/data/000.p/", "8/0/x000/001"])
def test_bad_tile_paths(log1000: TransparencyLog, path: str) -> None:
    with pytest.raises(BadTilePath) as e:
        log1000.tile(path)
    assert e.value.status == 400


def test_lookup_response_format(log1000: TransparencyLog) -> None:
    body = log1000.lookup_response(5)
    assert body == b"5\nrecord 5\n\n" + VECTORS["note"]["signed_tree_head_1000"].encode()
    n, text, _rest = note.parse_record(body)
    assert (n, text) == (5, b"record 5\n")
    with pytest.raises(RecordNotFound):
        log1000.lookup_response(1000)


def test_reads_are_constant_size(log1000: TransparencyLog, monkeypatch: pytest.MonkeyPatch) -> None:
    # A record, a tile or a tree head never reads whole files.
    calls: list[int] = []
    real = os.pread

    def counting(fd: int, n: int, off: int) -> bytes:
        calls.append(n)
        return real(fd, n, off)

    monkeypatch.setattr(server.os, "pread", counting)
    log1000.record(999)
    log1000.tile("8/0/002")
    log1000.tile("8/data/002")
    log1000.signed_tree_head()
    assert len(calls) < 30 and max(calls) <= 1024 * 32


# --- the captured original gobuild instance --------------------------------------------------


def test_rebuilds_the_original_instance(tmp_path: Path, no_fsync: None) -> None:
    inst = TESTDATA / "gobuild-instance"
    data = (inst / "tile-8-data-000.p.11").read_bytes()
    texts = []
    while data:
        _, text, data = note.parse_record(data)
        texts.append(text)
    skey, _ = note.generate_key("rebuilt.example")
    with TransparencyLog(tmp_path, skey) as tl:
        for text in texts:
            tl.append(text)
        assert tl.tile("8/data/000.p/11") == ((inst / "tile-8-data-000.p.11").read_bytes(), False)
        assert tl.tile("8/0/000.p/11") == ((inst / "tile-8-0-000.p.11").read_bytes(), False)
        latest = (inst / "latest.note").read_bytes()
        ours = tl.signed_tree_head()
        # Same tree text; only the signature line (another key) differs.
        assert ours[: ours.index(b"\n\n")] == latest[: latest.index(b"\n\n")]
        lookup = (inst / "lookup-multi-cmdb.txt").read_bytes()
        got = tl.lookup_response(8)
        assert got[: got.index("—".encode())] == lookup[: lookup.index("—".encode())]


# --- crashes ---------------------------------------------------------------------------------


def make_log(path: Path, count: int) -> list[bytes]:
    """Create a log of count vector records at path and return the texts."""
    with TransparencyLog(path, SKEY) as tl:
        for i in range(count):
            tl.append(record(i))
    return [record(i) for i in range(count)]


def append_bytes(path: Path, data: bytes) -> None:
    """Append raw bytes to a file, as a crashed appender would have left them."""
    with open(path, "ab") as f:
        f.write(data)


@pytest.mark.parametrize("stage", ["record-part", "record", "hashes-part", "hashes", "index-part"])
def test_torn_tail_is_repaired(tmp_path: Path, stage: str, no_fsync: None) -> None:
    records = make_log(tmp_path, 11)
    nxt = record(11)
    new_hashes = b"".join(merkle.stored_hashes(11, nxt, expected_hashes(records)))
    end = (sum(len(r) for r in records) + len(nxt)).to_bytes(8, "big")
    # Replay the append order (records, hashes, index) and stop part way.
    append_bytes(tmp_path / "records", nxt[:4] if stage == "record-part" else nxt)
    if stage.startswith("hashes") or stage == "index-part":
        append_bytes(tmp_path / "hashes", new_hashes[:40] if stage == "hashes-part" else new_hashes)
    if stage == "index-part":
        append_bytes(tmp_path / "record-index", end[:5])
    with TransparencyLog(tmp_path, SKEY) as tl:
        assert tl.size() == 11
        check_log(tmp_path, records)
        assert tl.append(b"after crash\n") == 11
    check_log(tmp_path, [*records, b"after crash\n"])


def test_torn_tail_is_repaired_by_an_open_log_before_appending(tmp_path: Path, no_fsync: None) -> None:
    records = make_log(tmp_path, 3)
    with TransparencyLog(tmp_path, SKEY) as tl:
        append_bytes(tmp_path / "records", b"partial rec")  # another process crashed meanwhile
        append_bytes(tmp_path / "hashes", b"x" * 33)
        assert tl.size() == 3
        assert tl.append(record(3)) == 3
    check_log(tmp_path, [*records, record(3)])


@pytest.mark.parametrize(
    "damage",
    ["records-short", "hashes-short", "record-changed", "hash-changed", "index-shrinks"],
)
def test_corruption_is_refused(tmp_path: Path, damage: str, no_fsync: None) -> None:
    make_log(tmp_path, 9)
    if damage == "records-short":
        os.truncate(tmp_path / "records", (tmp_path / "records").stat().st_size - 1)
    elif damage == "hashes-short":
        os.truncate(tmp_path / "hashes", (tmp_path / "hashes").stat().st_size - 32)
    elif damage == "record-changed":
        data = bytearray((tmp_path / "records").read_bytes())
        data[-3] ^= 1
        (tmp_path / "records").write_bytes(bytes(data))
    elif damage == "hash-changed":
        data = bytearray((tmp_path / "hashes").read_bytes())
        data[-1] ^= 1
        (tmp_path / "hashes").write_bytes(bytes(data))
    else:
        data = bytearray((tmp_path / "record-index").read_bytes())
        data[-8:] = (1).to_bytes(8, "big")
        (tmp_path / "record-index").write_bytes(bytes(data))
    with pytest.raises(LogCorruptError):
        TransparencyLog(tmp_path, SKEY)


def test_start_does_not_read_the_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Fabricate a large log directly, then count what opening it reads.
    n = 100_000
    texts = [record(i) for i in range(n)]
    hl = expected_hashes(texts)
    (tmp_path / "records").write_bytes(b"".join(texts))
    (tmp_path / "hashes").write_bytes(b"".join(hl.hashes))
    ends, total = bytearray(), 0
    for t in texts:
        total += len(t)
        ends += total.to_bytes(8, "big")
    (tmp_path / "record-index").write_bytes(bytes(ends))
    read: list[int] = []
    real = os.pread

    def counting(fd: int, k: int, off: int) -> bytes:
        read.append(k)
        return real(fd, k, off)

    monkeypatch.setattr(server.os, "pread", counting)
    start = time.monotonic()
    with TransparencyLog(tmp_path, SKEY) as tl:
        assert tl.size() == n
    assert time.monotonic() - start < 0.5
    assert sum(read) < 4096


# --- concurrency -----------------------------------------------------------------------------


def _append_worker(path: str, tag: str, count: int) -> list[int]:
    """Append count records tagged tag from another process; return their numbers."""
    with TransparencyLog(Path(path), SKEY) as tl:
        return [tl.append(f"{tag} {i}\n".encode()) for i in range(count)]


def test_two_processes_append_consistently(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        a, b = pool.starmap(_append_worker, [(str(tmp_path), "a", 60), (str(tmp_path), "b", 60)])
    assert sorted(a + b) == list(range(120))
    with TransparencyLog(tmp_path, SKEY) as tl:
        texts = [tl.record(i) for i in range(tl.size())]
    assert [texts[n] for n in a] == [f"a {i}\n".encode() for i in range(60)]
    assert [texts[n] for n in b] == [f"b {i}\n".encode() for i in range(60)]
    check_log(tmp_path, texts)


def test_threads_append_consistently(log: TransparencyLog, tmp_path: Path, no_fsync: None) -> None:
    import threading

    got: list[int] = []

    def work(tag: str) -> None:
        for i in range(50):
            got.append(log.append(f"{tag} {i}\n".encode()))

    threads = [threading.Thread(target=work, args=(t,)) for t in "xyz"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(150))
    check_log(tmp_path / "tlog", [log.record(i) for i in range(150)])


KILL_SCRIPT = """
import sys
from pathlib import Path
from gobuild.tlog.server import TransparencyLog
tl = TransparencyLog(Path(sys.argv[1]), sys.argv[2])
i = 0
while True:
    text = ("killed %d " % i + "x" * (i % 50) + "\\n").encode()
    n = tl.append(text)
    sys.stdout.write("%d %d\\n" % (n, i))
    sys.stdout.flush()
    i += 1
"""


def test_kill_9_during_appends_loses_nothing_returned(tmp_path: Path) -> None:
    # Each kill lands mid-append (a torn tail) about one time in five; see also the torn-tail tests.
    for round_ in range(4):
        proc = subprocess.Popen(
            [sys.executable, "-c", KILL_SCRIPT, str(tmp_path), SKEY],
            stdout=subprocess.PIPE, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert proc.stdout is not None
        returned: dict[int, int] = {}
        deadline = time.monotonic() + 10
        # Kill at a different moment each round, once appends are flowing.
        while len(returned) < 20 + 17 * round_ and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            n, i = map(int, line.split())
            returned[n] = i
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stdout.close()
        assert returned, "the appender printed nothing"
        with TransparencyLog(tmp_path, SKEY) as tl:
            texts = [tl.record(i) for i in range(tl.size())]
            for n, i in returned.items():
                assert texts[n].startswith(f"killed {i} ".encode())
            check_log(tmp_path, texts)
            tree = tl.tree()
            assert tree.hash == merkle.tree_hash(len(texts), expected_hashes(texts))


# --- keys ------------------------------------------------------------------------------------


def test_load_or_create_signer(tmp_path: Path) -> None:
    skey, vkey = server.load_or_create_signer(tmp_path, "gobuild.example", None)
    assert stat.S_IMODE((tmp_path / "signer.key").stat().st_mode) == 0o600
    assert (tmp_path / "verifier.key").read_text().strip() == vkey
    assert note.Signer.parse(skey).verifier() == note.Verifier.parse(vkey)
    assert vkey.startswith("gobuild.example+")
    assert server.load_or_create_signer(tmp_path, "gobuild.example", None) == (skey, vkey)
    (tmp_path / "verifier.key").unlink()
    assert server.load_or_create_signer(tmp_path, "gobuild.example", None) == (skey, vkey)
    assert (tmp_path / "verifier.key").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_load_signer_from_file(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(SKEY + "\n")
    assert server.load_or_create_signer(tmp_path / "data", "ignored", key_file) == (SKEY, VKEY)
    assert not (tmp_path / "data" / "signer.key").exists()


def test_bad_signer_key(tmp_path: Path) -> None:
    with pytest.raises(note.KeyFormatError):
        TransparencyLog(tmp_path, "PRIVATE+KEY+bad")
