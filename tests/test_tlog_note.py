"""Tests for gobuild.tlog.note: Go's note vectors, the captured original gobuild instance, negatives.

Vectors: tests/testdata/tlog/go-tlog-vectors.json ("note": made with golang.org/x/mod/sumdb/note)
and tests/testdata/tlog/gobuild-instance/ (responses of an original gobuild server).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from gobuild.tlog import merkle, note
from gobuild.tlog.merkle import HashList, Tile, TileHashReader, Tree
from gobuild.tlog.note import (
    InvalidSignatureError,
    KeyFormatError,
    MalformedNoteError,
    MalformedRecordError,
    MalformedTreeError,
    Note,
    Signer,
    UnverifiedNoteError,
    Verifier,
)

TESTDATA = Path(__file__).resolve().parent / "testdata" / "tlog"
INSTANCE = TESTDATA / "gobuild-instance"
NOTE_VECTOR = json.loads((TESTDATA / "go-tlog-vectors.json").read_text())["note"]
TREE_1000 = json.loads((TESTDATA / "go-tlog-vectors.json").read_text())["tree_hash"]["1000"]

# From the doc comment of Go's sumdb/note package.
GO_DOC_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_DOC_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_DOC_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_DOC_MSG = (
    GO_DOC_TEXT
    + "\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
).encode()


def signer_and_verifier() -> tuple[Signer, Verifier]:
    """Return the vector key pair."""
    return Signer.parse(NOTE_VECTOR["signer_key"]), Verifier.parse(NOTE_VECTOR["verifier_key"])


# --- known answers ---------------------------------------------------------------------------


def test_vector_keys_from_seed() -> None:
    skey, vkey = note.new_keys("vectors.example", bytes(range(32)))
    assert skey == NOTE_VECTOR["signer_key"]
    assert vkey == NOTE_VECTOR["verifier_key"]
    s, v = signer_and_verifier()
    assert str(s) == skey and str(v) == vkey
    assert s.verifier() == v


def test_vector_signed_tree_head_is_reproduced() -> None:
    s, v = signer_and_verifier()
    text = note.format_tree(Tree(1000, base64.b64decode(TREE_1000)))
    assert note.sign(text, s).decode() == NOTE_VECTOR["signed_tree_head_1000"]
    opened = note.open_note(NOTE_VECTOR["signed_tree_head_1000"].encode(), [v])
    assert opened.text.encode() == text
    assert note.parse_tree(opened.text.encode()) == Tree(1000, base64.b64decode(TREE_1000))


def test_go_doc_example() -> None:
    s = Signer.parse(GO_DOC_SKEY)
    assert str(s.verifier()) == GO_DOC_VKEY
    assert note.sign(GO_DOC_TEXT, s) == GO_DOC_MSG
    n = note.open_note(GO_DOC_MSG, [Verifier.parse(GO_DOC_VKEY)])
    assert n.text == GO_DOC_TEXT
    assert [(sig.name, sig.key_hash) for sig in n.sigs] == [("PeterNeumann", 0xC74F20A3)]


def test_key_hash_definition() -> None:
    _, v = signer_and_verifier()
    assert note.key_hash(v.name, b"\x01" + v.public_key) == v.key_hash == 0x25475B07


def test_generate_key_round_trip() -> None:
    skey, vkey = note.generate_key("gobuild.example")
    s, v = Signer.parse(skey), Verifier.parse(vkey)
    msg = note.sign("hello\n", s)
    assert note.open_note(msg, [v]).text == "hello\n"
    assert note.generate_key("gobuild.example") != (skey, vkey)
    with pytest.raises(KeyFormatError):
        note.generate_key("has space")
    with pytest.raises(KeyFormatError):
        note.generate_key("a+b")
    with pytest.raises(KeyFormatError):
        note.generate_key("")


def test_signer_key_tolerates_trailing_newline() -> None:
    # The original reads SignerKeyFile raw; Go's base64 decoder skips the newline.
    assert Signer.parse(NOTE_VECTOR["signer_key"] + "\n") == signer_and_verifier()[0]


# --- the captured original gobuild instance --------------------------------------------------


def instance_verifier() -> Verifier:
    """Return the original instance's verifier."""
    return Verifier.parse((INSTANCE / "verifier.key").read_text().strip())


def instance_records() -> list[tuple[int, bytes]]:
    """Parse the data tile of the instance into (record number, record text)."""
    data = (INSTANCE / "tile-8-data-000.p.11").read_bytes()
    records = []
    while data:
        n, text, data = note.parse_record(data)
        records.append((n, text))
    return records


def test_instance_latest_note_verifies() -> None:
    n = note.open_note((INSTANCE / "latest.note").read_bytes(), [instance_verifier()])
    tree = note.parse_tree(n.text.encode())
    assert tree.n == 11


def test_instance_tree_is_recomputed_from_record_texts() -> None:
    tree = note.parse_tree(note.open_note((INSTANCE / "latest.note").read_bytes(), [instance_verifier()]).text.encode())
    records = instance_records()
    assert [n for n, _ in records] == list(range(11))
    hl = HashList()
    for n, text in records:
        hl.hashes.extend(merkle.stored_hashes(n, text, hl))
    assert merkle.tree_hash(11, hl) == tree.hash
    tile = Tile(8, 0, 0, 11)
    assert merkle.read_tile_data(tile, hl) == (INSTANCE / "tile-8-0-000.p.11").read_bytes()
    # And the tile alone authenticates against the signed head, as a client would check.
    data = (INSTANCE / "tile-8-0-000.p.11").read_bytes()

    class One:
        def height(self) -> int:
            return 8

        def read_tiles(self, tiles: Sequence[Tile]) -> list[bytes]:
            assert list(tiles) == [tile]
            return [data]

        def save_tiles(self, tiles: Sequence[Tile], data: Sequence[bytes]) -> None:
            pass

    got = TileHashReader(tree, One()).read_hashes([merkle.stored_hash_index(0, 10)])
    assert got == [merkle.record_hash(records[10][1])]


@pytest.mark.parametrize("name", ["lookup-hello-v1.1.0-linux-amd64.txt", "lookup-multi-cmdb.txt"])
def test_instance_lookups(name: str) -> None:
    msg = (INSTANCE / name).read_bytes()
    n, text, rest = note.parse_record(msg)
    assert dict(instance_records())[n] == text
    assert text.endswith(b" \n") or text.endswith(b"stripped\n")
    assert rest == (INSTANCE / "latest.note").read_bytes()
    note.open_note(rest, [instance_verifier()])


# --- open: negatives -------------------------------------------------------------------------


def signed(text: str = "go.sum database tree\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n") -> bytes:
    """Return text signed with the vector key."""
    return note.sign(text, signer_and_verifier()[0])


def test_open_rejects_bit_flips_in_text_and_signature() -> None:
    msg = signed()
    _, v = signer_and_verifier()
    text_len = msg.index(b"\n\n") + 1
    for i in range(text_len):
        bad = bytearray(msg)
        bad[i] ^= 0x01
        with pytest.raises(note.NoteError):
            note.open_note(bytes(bad), [v])
    sig_line = msg[text_len + 1 :].decode()
    b64 = sig_line.split(" ")[2].strip()
    raw = base64.b64decode(b64)
    for i in range(4, len(raw)):
        flipped = base64.b64encode(raw[:i] + bytes([raw[i] ^ 0x80]) + raw[i + 1 :]).decode()
        with pytest.raises(InvalidSignatureError):
            note.open_note(msg.replace(b64.encode(), flipped.encode()), [v])


def test_open_unknown_key_is_unverified() -> None:
    _, other = note.generate_key("vectors.example")
    with pytest.raises(UnverifiedNoteError) as e:
        note.open_note(signed(), [Verifier.parse(other)])
    assert len(e.value.note.unverified_sigs) == 1
    with pytest.raises(UnverifiedNoteError):
        note.open_note(signed(), [])


def test_open_with_key_hash_of_wrong_name() -> None:
    # A verifier for another name with the same hash must not be consulted.
    _, v = signer_and_verifier()
    fake = Verifier("other.example", v.key_hash, v.public_key)
    with pytest.raises(UnverifiedNoteError):
        note.open_note(signed(), [fake])


@pytest.mark.parametrize(
    "mutate",
    [
        lambda m: m[:-1],  # no final newline
        lambda m: m.replace(b"\n\n", b"\n"),  # no blank line
        lambda m: m.replace("—".encode(), b"-"),  # wrong prefix
        lambda m: m.replace(b"vectors.example ", b"vectors.example"),  # no space
        lambda m: m + b"extra\n",  # trailing garbage line
        lambda m: m.replace(b"database", b"data\x01base"),  # control character
        lambda m: m.replace(b"database", b"data\xffbase"),  # invalid UTF-8
        lambda m: m.replace(b"\n\n", b"\r\n\n"),  # carriage return
        lambda m: m[: m.rindex(b" ") + 1] + b"AAAA\n",  # signature too short
        lambda m: m[: m.rindex(b" ") + 1] + b"\n",  # empty signature
        lambda m: m[: m.rindex(b" ") + 1] + b"!!!!\n",  # not base64
        lambda m: m[: m.rindex(b"=")] + b"\n",  # bad padding
        lambda m: b"",
    ],
)
def test_open_malformed(mutate: object) -> None:
    _, v = signer_and_verifier()
    msg = mutate(signed())  # type: ignore[operator]
    with pytest.raises(MalformedNoteError):
        note.open_note(msg, [v])


def test_open_too_many_signatures() -> None:
    msg = signed()
    line = msg[msg.index(b"\n\n") + 2 :]
    _, v = signer_and_verifier()
    assert note.open_note(msg + line * 99, [v]).sigs  # duplicates are dropped, up to 100 lines
    with pytest.raises(MalformedNoteError):
        note.open_note(msg + line * 100, [v])


def test_sign_keeps_other_signatures_and_replaces_own() -> None:
    s, v = signer_and_verifier()
    other_s, other_v = note.generate_key("other.example")
    msg = note.sign("text\n", Signer.parse(other_s))
    n = note.open_note(msg, [Verifier.parse(other_v)])
    both = note.sign(n, s)
    opened = note.open_note(both, [v, Verifier.parse(other_v)])
    assert [sig.name for sig in opened.sigs] == ["other.example", "vectors.example"]
    again = note.sign(opened, s)
    assert again == both
    with pytest.raises(MalformedNoteError):
        note.sign("no newline", s)
    with pytest.raises(MalformedNoteError):
        note.sign(Note("x\n", sigs=[note.Signature("a", 1, "AAAAAAAA")]), s)


# --- keys: negatives -------------------------------------------------------------------------


def test_verifier_key_negatives() -> None:
    vkey = NOTE_VECTOR["verifier_key"]
    name, h, data = vkey.split("+", 2)
    raw = base64.b64decode(data)
    bad = [
        "",
        name,
        f"{name}+{h}",
        f"{name}+{h}+",
        f"{name}+{h[:-1]}+{data}",  # short hash
        f"{name}+{h}0+{data}",  # long hash
        f"{name}+0x{h[2:]}+{data}",
        f"{name}+{int(h, 16) ^ 1:08x}+{data}",  # wrong hash
        f"{name}+{h}+{data[:-4]}",  # short key
        f"{name}+{h}+{base64.b64encode(raw + b'x').decode()}",  # long key
        f"{name}+{h}+{base64.b64encode(bytes([2]) + raw[1:]).decode()}",  # unknown algorithm
        f"{name}+{h}+{base64.b64encode(raw[:5] + bytes([raw[5] ^ 1]) + raw[6:]).decode()}",  # bit flip
        f"bad name+{h}+{data}",
    ]
    for k in bad:
        with pytest.raises(KeyFormatError):
            Verifier.parse(k)


def test_signer_key_negatives() -> None:
    skey = NOTE_VECTOR["signer_key"]
    seed_b64 = skey.rsplit("+", 1)[1]
    raw = base64.b64decode(seed_b64)
    for k in [
        skey.replace("PRIVATE+KEY", "PRIVATE+KEX"),
        skey[len("PRIVATE+KEY+") :],
        NOTE_VECTOR["verifier_key"],
        skey.replace(seed_b64, base64.b64encode(raw[:-1]).decode()),
        skey.replace(seed_b64, base64.b64encode(raw[:-1] + bytes([raw[-1] ^ 1])).decode()),  # hash mismatch
        skey.replace("25475b07", "25475b08"),
    ]:
        with pytest.raises(KeyFormatError):
            Signer.parse(k)


# --- tree and record texts -------------------------------------------------------------------


def test_tree_round_trip_and_extra_lines() -> None:
    tree = Tree(11, bytes(range(32)))
    text = note.format_tree(tree)
    assert text == b"go.sum database tree\n11\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
    assert note.parse_tree(text) == tree
    assert note.parse_tree(text + b"future line\n") == tree


@pytest.mark.parametrize(
    "text",
    [
        b"",
        b"go.sum database tree\n11\n",
        b"go.sum database tree v2\n11\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
        b"go.sum database tree\n011\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
        b"go.sum database tree\n+11\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
        b"go.sum database tree\n-1\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
        b"go.sum database tree\n 11\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
        b"go.sum database tree\n9223372036854775808\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
        b"go.sum database tree\n11\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==\n",  # 31 bytes
        b"go.sum database tree\n11\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gIQ==\n",  # 34 bytes
        b"go.sum database tree\n11\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n",  # no padding
        b"go.sum database tree\n1\xff\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
    ],
)
def test_parse_tree_negatives(text: bytes) -> None:
    with pytest.raises(MalformedTreeError):
        note.parse_tree(text)


def test_record_round_trip() -> None:
    text = b"example.com/x v1.0.0 / linux amd64 go1.27.3 100 0sd8_lFE5hUIOSIeKvlbaSt7n6u4 \n"
    msg = note.format_record(5, text) + b"rest"
    assert note.parse_record(msg) == (5, text, b"rest")
    # As in Go, a lone newline is (degenerate but) valid record text.
    assert note.parse_record(note.format_record(0, b"\n")) == (0, b"\n", b"")
    for bad in (b"", b"no newline", b"a\n\nb\n", b"a\x01\n", b"\xff\n", b"\n\n"):
        with pytest.raises(MalformedRecordError):
            note.format_record(1, bad)


@pytest.mark.parametrize(
    "msg",
    [b"", b"5", b"x\nrecord\n\n", b"5\nrecord\n", b"5\nrec\x01ord\n\n", b"\nrecord\n\n", b" 5\nrecord\n\n",
     b"5_0\nrecord\n\n", b"5\nr\xff\n\n", b"99999999999999999999\nrecord\n\n"],
)
def test_parse_record_negatives(msg: bytes) -> None:
    with pytest.raises(MalformedRecordError):
        note.parse_record(msg)
