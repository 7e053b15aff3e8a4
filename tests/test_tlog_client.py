"""Tests for gobuild.tlog.client against a real TransparencyLog served over local HTTP.

Also checks the client against tests/testdata/tlog/gobuild-instance/ (responses captured
from an original gobuild server), served as they were captured.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gobuild.tlog import merkle, note, server
from gobuild.tlog.client import Client, FetchError, SecurityError, StateError, VerificationError
from gobuild.tlog.merkle import HashList
from gobuild.tlog.server import LogError, TransparencyLog

INSTANCE = Path(__file__).resolve().parent / "testdata" / "tlog" / "gobuild-instance"
SKEY, VKEY = note.new_keys("log.example", bytes(range(1, 33)))


class LogServer:
    """Serves a TransparencyLog at /tlog like gobuild, with hooks to misbehave."""

    def __init__(self, log: TransparencyLog) -> None:
        self.log = log
        self.keys: dict[str, int] = {}  # lookup key -> record number
        self.tamper: Callable[[str, bytes], bytes] = lambda path, body: body
        self.refuse: Callable[[str], bool] = lambda path: False
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.path)
                status, body = outer.respond(self.path)
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 64  # the default 5 makes concurrent clients wait for SYN retries

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/tlog"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def respond(self, path: str) -> tuple[int, bytes]:
        """Return status and body for a request path."""
        if not path.startswith("/tlog/") or self.refuse(path):
            return 404, b"not found\n"
        rest = path[len("/tlog/") :]
        try:
            if rest == "latest":
                body = self.log.signed_tree_head()
            elif rest.startswith("lookup/"):
                key = rest[len("lookup/") :]
                if key not in self.keys:
                    return 404, b"not found\n"
                body = self.log.lookup_response(self.keys[key])
            elif rest.startswith("tile/"):
                body = self.log.tile(rest[len("tile/") :])[0]
            else:
                return 404, b"not found\n"
        except LogError as e:
            return e.status, str(e).encode()
        return 200, self.tamper(path, body)

    def add(self, key: str, text: bytes) -> int:
        """Append a record and make it findable under key."""
        self.keys[key] = self.log.append(text)
        return self.keys[key]

    def close(self) -> None:
        """Stop serving."""
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(autouse=True)
def no_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip fsync: these tests are about verification, not durability."""
    monkeypatch.setattr(server.os, "fsync", lambda fd: None)


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[LogServer]:
    """A served empty log."""
    log = TransparencyLog(tmp_path / "log", SKEY)
    s = LogServer(log)
    yield s
    s.close()
    s.log.close()


def fill(srv: LogServer, start: int, count: int, tag: str = "rec") -> None:
    """Append records key-start..key-(start+count-1)."""
    for i in range(start, start + count):
        srv.add(f"key-{i}", f"{tag} {i} x\n".encode())


def new_client(srv: LogServer | str, state: Path, vkey: str = VKEY) -> Client:
    """A client of srv keeping its state in state."""
    return Client(srv if isinstance(srv, str) else srv.url, vkey, state, timeout=5)


def swap_log(srv: LogServer, tmp_path: Path, name: str, texts: list[bytes]) -> None:
    """Replace the served log with a new one holding texts (same key): a rewritten history."""
    log = TransparencyLog(tmp_path / name, SKEY)
    for t in texts:
        log.append(t)
    srv.log.close()
    srv.log = log


# --- normal operation --------------------------------------------------------------------------


def test_first_use_trusts_and_stores_state(srv: LogServer, tmp_path: Path) -> None:
    fill(srv, 0, 11)
    state = tmp_path / "state"
    c = new_client(srv, state)
    assert c.lookup("key-3") == (3, b"rec 3 x\n")
    assert (state / "config" / "key").read_text().strip() == VKEY
    assert (state / "config" / "log.example" / "latest").read_bytes() == srv.log.signed_tree_head()
    cached = state / "cache" / "log.example" / "tile" / "8" / "0" / "000.p" / "11"
    assert cached.read_bytes() == srv.log.tile("8/0/000.p/11")[0]
    assert c.latest()[0] == srv.log.tree()


def test_growing_log_is_checked_and_followed(srv: LogServer, tmp_path: Path) -> None:
    state = tmp_path / "state"
    fill(srv, 0, 5)
    assert new_client(srv, state).lookup("key-4") == (4, b"rec 4 x\n")
    for upto in (6, 255, 256, 257, 300, 600):
        fill(srv, srv.log.size(), upto - srv.log.size())
        c = new_client(srv, state)  # a new process each time: state comes from disk
        assert c.lookup(f"key-{upto - 1}") == (upto - 1, f"rec {upto - 1} x\n".encode())
        assert c.lookup("key-1") == (1, b"rec 1 x\n")
        assert (state / "config" / "log.example" / "latest").read_bytes() == srv.log.signed_tree_head()
    cache = state / "cache" / "log.example" / "tile" / "8"
    assert (cache / "0" / "000").read_bytes() == srv.log.tile("8/0/000")[0]
    assert (cache / "1" / "000.p" / "2").exists()


def test_older_head_in_a_response_is_accepted(srv: LogServer, tmp_path: Path) -> None:
    fill(srv, 0, 10)
    old_response = srv.log.lookup_response(2)
    fill(srv, 10, 10)
    c = new_client(srv, tmp_path / "state")
    c.lookup("key-15")
    # A lagging mirror replays an older (consistent) head: fine, latest stays.
    srv.tamper = lambda path, body: old_response if "/lookup/" in path else body
    assert c.lookup("key-2") == (2, b"rec 2 x\n")
    assert c.latest()[0].n == 20


def test_tiles_come_from_the_cache(srv: LogServer, tmp_path: Path) -> None:
    fill(srv, 0, 30)
    state = tmp_path / "state"
    new_client(srv, state).lookup("key-5")
    srv.requests.clear()
    new_client(srv, state).lookup("key-6")
    assert [p for p in srv.requests if "/tile/" in p] == []


def test_partial_tile_missing_falls_back_to_full(srv: LogServer, tmp_path: Path) -> None:
    fill(srv, 0, 100)
    state = tmp_path / "state"
    new_client(srv, state).lookup("key-1")
    fill(srv, 100, 200)
    # Serve only full tiles at level 0, as a server that drops completed partial tiles.
    srv.refuse = lambda path: "/tile/8/0/000.p/" in path
    assert new_client(srv, state).lookup("key-150") == (150, b"rec 150 x\n")


def test_shared_state_compare_and_swap(srv: LogServer, tmp_path: Path) -> None:
    state = tmp_path / "state"
    fill(srv, 0, 10)
    a, b = new_client(srv, state), new_client(srv, state)
    a.lookup("key-1")
    b.lookup("key-2")
    fill(srv, 10, 10)
    b.lookup("key-12")  # b moves the stored head to 20
    a.lookup("key-3")  # a still has 10 in memory; its response (20) merges with b's
    assert a.latest()[0].n == 20
    assert (state / "config" / "log.example" / "latest").read_bytes() == srv.log.signed_tree_head()


def test_concurrent_lookups(srv: LogServer, tmp_path: Path) -> None:
    fill(srv, 0, 40)
    c = new_client(srv, tmp_path / "state")
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            assert c.lookup(f"key-{i}") == (i, f"rec {i} x\n".encode())
        except BaseException as e:  # collected for the main thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(0, 40, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


# --- misbehaving servers --------------------------------------------------------------------------


def test_rewritten_record_is_caught(srv: LogServer, tmp_path: Path) -> None:
    fill(srv, 0, 10)
    c = new_client(srv, tmp_path / "state")
    c.lookup("key-4")
    # Change the stored text of record 4 (same length), leaving the hashes alone.
    records = tmp_path / "log" / "records"
    records.write_bytes(records.read_bytes().replace(b"rec 4 x\n", b"rec 4 y\n"))
    with pytest.raises(VerificationError, match="cannot authenticate record data in server response"):
        c.lookup("key-4")
    with pytest.raises(VerificationError, match="cannot authenticate record data in server response"):
        new_client(srv, tmp_path / "fresh").lookup("key-4")  # even on first use


def test_forked_log_is_a_security_error(srv: LogServer, tmp_path: Path) -> None:
    fill(srv, 0, 10)
    c = new_client(srv, tmp_path / "state")
    c.lookup("key-1")
    old_note = srv.log.signed_tree_head()
    # Same key, same size and more, but record 7 rewritten: a fork, with the hashes redone.
    texts = [f"rec {i} x\n".encode() for i in range(15)]
    texts[7] = b"rec 7 evil\n"
    swap_log(srv, tmp_path, "forked", texts)
    with pytest.raises(SecurityError) as e:
        c.lookup("key-1")
    new_note = srv.log.signed_tree_head()
    msg = str(e.value)
    head = (
        "SECURITY ERROR\ngo.sum database server misbehavior detected!\n\n"
        f"old database:\n\t{old_note.decode().replace(chr(10), chr(10) + chr(9))}\n"
        f"new database:\n\t{new_note.decode().replace(chr(10), chr(10) + chr(9))}\n"
        "proof of misbehavior:\n\t"
    )
    assert msg.startswith(head)
    # The proof shows that the new tree's first 10 records hash to h, not the old root.
    lines = msg[len(head) :].split("\n\t")
    h, proof = merkle.parse_hash(lines[0]), [merkle.parse_hash(x) for x in lines[1:]]
    new_tree = srv.log.tree()
    merkle.check_tree(proof, new_tree.n, new_tree.hash, 10, h)
    assert h != note.parse_tree(note.open_note(old_note, [note.Verifier.parse(VKEY)]).text.encode()).hash
    # The stored head was not replaced by the fork.
    assert (tmp_path / "state" / "config" / "log.example" / "latest").read_bytes() == old_note


def test_truncated_and_regrown_log_is_caught(srv: LogServer, tmp_path: Path) -> None:
    fill(srv, 0, 10)
    c = new_client(srv, tmp_path / "state")
    c.lookup("key-9")
    # The operator truncates the log to 5 records and appends other ones, regrowing to 12.
    texts = [f"rec {i} x\n".encode() for i in range(5)] + [f"other {i}\n".encode() for i in range(7)]
    swap_log(srv, tmp_path, "regrown", texts)
    with pytest.raises(SecurityError, match=r"^SECURITY ERROR\ngo\.sum database server misbehavior detected!"):
        new_client(srv, tmp_path / "state").lookup("key-1")


def test_shrunk_log_is_caught(srv: LogServer, tmp_path: Path) -> None:
    fill(srv, 0, 10)
    new_client(srv, tmp_path / "state").lookup("key-9")
    swap_log(srv, tmp_path, "shrunk", [f"rec {i} x\n".encode() for i in range(4)] + [b"new 4\n", b"new 5\n"])
    # The smaller tree must be a prefix of the stored one, checked from cached tiles.
    with pytest.raises(SecurityError, match="proof of misbehavior"):
        new_client(srv, tmp_path / "state").lookup("key-1")


def test_truncated_log_with_same_prefix_is_fine(srv: LogServer, tmp_path: Path) -> None:
    fill(srv, 0, 10)
    new_client(srv, tmp_path / "state").lookup("key-9")
    swap_log(srv, tmp_path, "prefix", [f"rec {i} x\n".encode() for i in range(6)])
    # An older head of the same history (a stale mirror) is not misbehaviour.
    assert new_client(srv, tmp_path / "state").lookup("key-1") == (1, b"rec 1 x\n")


def flip_bit(body: bytes, i: int = 0) -> bytes:
    """Flip the lowest bit of byte i."""
    return body[:i] + bytes([body[i] ^ 1]) + body[i + 1 :]


def test_flipped_bit_in_tile_is_refused(srv: LogServer, tmp_path: Path) -> None:
    fill(srv, 0, 300)
    state = tmp_path / "state"
    for target in ("/tile/8/0/000", "/tile/8/0/001.p/44", "/tile/8/1/000.p/1"):

        def tamper(path: str, body: bytes, target: str = target) -> bytes:
            return flip_bit(body, 5) if path == "/tlog" + target else body

        srv.tamper = tamper
        with pytest.raises(VerificationError, match="downloaded inconsistent tile"):
            new_client(srv, state).lookup("key-1")
        assert not (state / "cache").exists() or not any(p.is_file() for p in (state / "cache").rglob("*"))
    srv.tamper = lambda path, body: body
    assert new_client(srv, state).lookup("key-1") == (1, b"rec 1 x\n")


@pytest.mark.parametrize("cut", [-1, 1])
def test_tile_of_wrong_length_is_refused(srv: LogServer, tmp_path: Path, cut: int) -> None:
    fill(srv, 0, 20)
    srv.tamper = lambda path, body: (body[:-1] if cut < 0 else body + b"\0") if "/tile/" in path else body
    with pytest.raises(VerificationError, match="bad result slice"):
        new_client(srv, tmp_path / "state").lookup("key-1")


def test_bad_signature_is_refused(srv: LogServer, tmp_path: Path) -> None:
    fill(srv, 0, 3)
    other = note.generate_key("log.example")[1]
    with pytest.raises(VerificationError, match="reading tree note"):
        new_client(srv, tmp_path / "a", vkey=other).lookup("key-1")

    def flip_sig(path: str, body: bytes) -> bytes:
        sig_at = body.rindex(b" ") + 10
        return flip_bit(body, sig_at) if "/lookup/" in path else body

    srv.tamper = flip_sig
    with pytest.raises(VerificationError, match="invalid signature"):
        new_client(srv, tmp_path / "b").lookup("key-1")


@pytest.mark.parametrize(
    "body",
    [b"", b"garbage", b"1\nrec 1 x\n", b"99\nrec 1 x\n\n", b"-1\nrec 1 x\n\n"],
)
def test_malformed_lookup_response(srv: LogServer, tmp_path: Path, body: bytes) -> None:
    fill(srv, 0, 3)
    head = srv.log.signed_tree_head()
    srv.tamper = lambda path, b: (body + head if body.endswith(b"\n\n") else body) if "/lookup/" in path else b
    with pytest.raises(VerificationError):
        new_client(srv, tmp_path / "state").lookup("key-1")


def test_record_beyond_the_signed_tree(srv: LogServer, tmp_path: Path) -> None:
    fill(srv, 0, 3)
    srv.tamper = lambda path, b: b"5\nrec 1 x\n\n" + srv.log.signed_tree_head() if "/lookup/" in path else b
    with pytest.raises(VerificationError, match="cannot validate record 5 in tree of size 3"):
        new_client(srv, tmp_path / "state").lookup("key-1")


# --- local state and transport ------------------------------------------------------------------


def test_different_key_for_name(srv: LogServer, tmp_path: Path) -> None:
    fill(srv, 0, 2)
    new_client(srv, tmp_path / "state").lookup("key-1")
    other = note.generate_key("log.example")[1]
    with pytest.raises(StateError, match="different key for name in verifierkey"):
        new_client(srv, tmp_path / "state", vkey=other).lookup("key-1")


def test_bad_verifier_key_and_name() -> None:
    with pytest.raises(StateError):
        Client("http://127.0.0.1:1/tlog", "nonsense", Path("/nonexistent"))
    _, dotdot = note.new_keys("..", bytes(32))
    with pytest.raises(StateError):
        Client("http://127.0.0.1:1/tlog", dotdot, Path("/nonexistent"))


def test_http_errors(srv: LogServer, tmp_path: Path) -> None:
    fill(srv, 0, 2)
    with pytest.raises(FetchError) as e:
        new_client(srv, tmp_path / "state").lookup("no-such-key")
    assert e.value.server_status == 404
    srv.close()
    with pytest.raises(FetchError):
        new_client(srv, tmp_path / "state").lookup("key-1")


def test_oversized_response_is_refused(srv: LogServer, tmp_path: Path) -> None:
    fill(srv, 0, 2)
    srv.tamper = lambda path, body: body + b"x" * (2 << 20) if "/lookup/" in path else body
    with pytest.raises(FetchError, match="response larger than"):
        new_client(srv, tmp_path / "state").lookup("key-1")


def test_stored_head_that_does_not_verify(srv: LogServer, tmp_path: Path) -> None:
    fill(srv, 0, 2)
    latest = tmp_path / "state" / "config" / "log.example" / "latest"
    latest.parent.mkdir(parents=True)
    latest.write_bytes(b"garbage\n")
    with pytest.raises(VerificationError, match="reading tree note"):
        new_client(srv, tmp_path / "state").lookup("key-1")


# --- the original gobuild -------------------------------------------------------------------------


class CapturedServer(LogServer):
    """Serves the files captured from an original gobuild instance."""

    def __init__(self) -> None:
        self.files = {
            "/tlog/lookup/example.com/oracle/hello@v1.1.0/linux-amd64-go1.27.3/": "lookup-hello-v1.1.0-linux-amd64.txt",
            "/tlog/lookup/example.com/oracle/multi@v1.1.0/cmd/b/darwin-arm64-go1.27.3/": "lookup-multi-cmdb.txt",
            "/tlog/tile/8/0/000.p/11": "tile-8-0-000.p.11",
            "/tlog/latest": "latest.note",
        }
        super().__init__(None)  # type: ignore[arg-type]

    def respond(self, path: str) -> tuple[int, bytes]:
        if path not in self.files:
            return 404, b"not found\n"
        return 200, self.tamper(path, (INSTANCE / self.files[path]).read_bytes())


def test_client_verifies_the_original_gobuild(tmp_path: Path) -> None:
    s = CapturedServer()
    try:
        vkey = (INSTANCE / "verifier.key").read_text()
        c = new_client(s.url, tmp_path / "state", vkey=vkey)
        n, text = c.lookup("example.com/oracle/hello@v1.1.0/linux-amd64-go1.27.3/")
        want = b"example.com/oracle/hello v1.1.0 / linux amd64 go1.27.3 2504463 0W2U1Dnzf_WcDIC_8StCKg9YU9Iw \n"
        assert (n, text) == (1, want)
        n, _ = c.lookup("example.com/oracle/multi@v1.1.0/cmd/b/darwin-arm64-go1.27.3/")
        assert n == 8
        s.tamper = lambda path, body: flip_bit(body, 32 * 8 + 3) if "/tile/" in path else body
        with pytest.raises(VerificationError, match="downloaded inconsistent tile"):
            new_client(s.url, tmp_path / "fresh", vkey=vkey).lookup(
                "example.com/oracle/hello@v1.1.0/linux-amd64-go1.27.3/"
            )
    finally:
        s.close()


def test_records_hash_as_merkle_says(srv: LogServer) -> None:
    # Guard for the fixtures above: the served log is the merkle log of its texts.
    fill(srv, 0, 7)
    hl = HashList()
    for i in range(7):
        hl.hashes.extend(merkle.stored_hashes(i, f"rec {i} x\n".encode(), hl))
    assert srv.log.tree().hash == merkle.tree_hash(7, hl)
