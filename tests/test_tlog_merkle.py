"""Tests for gobuild.tlog.merkle: known answers from Go's tlog, then brute force and negatives.

Vectors: tests/testdata/tlog/go-tlog-vectors.json, made with golang.org/x/mod/sumdb/tlog
over the records "record <i>\\n" (see tests/testdata/README.md).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from gobuild.tlog import merkle
from gobuild.tlog.merkle import (
    BadTilePathError,
    HashList,
    InconsistentTileError,
    InvalidInputError,
    ProofError,
    Tile,
    TileHashReader,
    TlogError,
    Tree,
)

VECTORS = Path(__file__).resolve().parent / "testdata" / "tlog" / "go-tlog-vectors.json"


@cache
def vectors() -> dict[str, Any]:
    """Load the Go-generated vectors once."""
    return json.loads(VECTORS.read_text())  # type: ignore[no-any-return]


def b64(s: str) -> bytes:
    """Decode std base64."""
    return base64.b64decode(s)


def record(i: int) -> bytes:
    """Return the vector record text for record i."""
    return f"record {i}\n".encode()


def build(records: Sequence[bytes]) -> HashList:
    """Return the stored hashes of a log holding records, appended one at a time."""
    hl = HashList()
    for n, data in enumerate(records):
        hl.hashes.extend(merkle.stored_hashes(n, data, hl))
    return hl


@cache
def vector_log(n: int) -> HashList:
    """Return the stored hashes of the vector log of n records."""
    return build([record(i) for i in range(n)])


def mth(leaves: Sequence[bytes]) -> bytes:
    """RFC 6962 Merkle tree hash, straight from the RFC's recursive definition."""
    if len(leaves) == 1:
        return merkle.record_hash(leaves[0])
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return merkle.node_hash(mth(leaves[:k]), mth(leaves[k:]))


class MemTiles:
    """A TileReader over an in-memory log, optionally tampering with one tile."""

    def __init__(self, hl: HashList, height: int, tamper: Tile | None = None, flip: int = 0) -> None:
        self.hl, self.h, self.tamper, self.flip = hl, height, tamper, flip
        self.saved: list[Tile] = []

    def height(self) -> int:
        return self.h

    def read_tiles(self, tiles: Sequence[Tile]) -> list[bytes]:
        out = []
        for t in tiles:
            data = merkle.read_tile_data(t, self.hl)
            tampered = self.tamper is not None and (t.H, t.L, t.N) == (self.tamper.H, self.tamper.L, self.tamper.N)
            if tampered and self.flip < len(data):
                data = data[: self.flip] + bytes([data[self.flip] ^ 1]) + data[self.flip + 1 :]
            out.append(data)
        return out

    def save_tiles(self, tiles: Sequence[Tile], data: Sequence[bytes]) -> None:
        self.saved.extend(tiles)


# --- known answers from Go -------------------------------------------------------------------


def test_primitive_hashes() -> None:
    assert merkle.record_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert merkle.node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    assert merkle.tree_hash(0, HashList()) == hashlib.sha256(b"").digest()


@pytest.mark.parametrize("n", sorted(int(k) for k in json.loads(VECTORS.read_text())["tree_hash"]))
def test_tree_hash_vectors(n: int) -> None:
    want = b64(vectors()["tree_hash"][str(n)])
    assert merkle.tree_hash(n, vector_log(70000)) == want


def test_tree_hash_does_not_read_beyond_n() -> None:
    # A log of exactly n records must be enough: tree_hash(n) reads only that prefix.
    for n in (1, 5, 255, 256, 257):
        assert merkle.tree_hash(n, vector_log(n)) == b64(vectors()["tree_hash"][str(n)])


def test_stored_hash_count_vectors() -> None:
    for n, want in vectors()["stored_hash_count"].items():
        assert merkle.stored_hash_count(int(n)) == want
    assert len(vector_log(1000)) == 1994


def test_stored_hash_index_vectors() -> None:
    for key, want in vectors()["stored_hash_index"].items():
        level, n = key.split("_")
        assert merkle.stored_hash_index(int(level[1:]), int(n[1:])) == want


@pytest.mark.parametrize("key", ["t1000_n0", "t1000_n1", "t1000_n500", "t1000_n999"])
def test_record_proof_vectors(key: str) -> None:
    t, n = (int(x[1:]) for x in key.split("_"))
    want = [b64(h) for h in vectors()["record_proof"][key]]
    hl = vector_log(1000)
    assert merkle.prove_record(t, n, hl) == want
    merkle.check_record(want, t, merkle.tree_hash(t, hl), n, merkle.record_hash(record(n)))


@pytest.mark.parametrize("key", ["t1000_n1", "t1000_n256", "t1000_n500", "t1000_n999"])
def test_tree_proof_vectors(key: str) -> None:
    t, n = (int(x[1:]) for x in key.split("_"))
    want = [b64(h) for h in vectors()["tree_proof"][key]]
    hl = vector_log(1000)
    assert merkle.prove_tree(t, n, hl) == want
    merkle.check_tree(want, t, merkle.tree_hash(t, hl), n, merkle.tree_hash(n, hl))


def test_tile_vectors() -> None:
    hl = vector_log(1000)
    want = {path: b64(data) for path, data in vectors()["tiles_h8_tree1000"].items()}
    got = {t.path(): merkle.read_tile_data(t, hl) for t in merkle.new_tiles(8, 0, 1000)}
    assert got == want


def test_tile_path_vectors() -> None:
    for key, path in vectors()["tile_paths"].items():
        h, level, n, w = (int(x[1:]) for x in key.split("_"))
        t = Tile(h, level, n, w)
        assert t.path() == path
        assert merkle.parse_tile_path(path) == t


# --- brute force against the RFC definition --------------------------------------------------


def test_tree_hash_and_proofs_match_rfc6962() -> None:
    leaves = [f"leaf {i}".encode() for i in range(40)]
    hl = build(leaves)
    for t in range(1, len(leaves) + 1):
        th = merkle.tree_hash(t, hl)
        assert th == mth(leaves[:t])
        assert len(hl.hashes) >= merkle.stored_hash_count(t)
        for n in range(t):
            p = merkle.prove_record(t, n, hl)
            merkle.check_record(p, t, th, n, merkle.record_hash(leaves[n]))
        for n in range(1, t + 1):
            p = merkle.prove_tree(t, n, hl)
            merkle.check_tree(p, t, th, n, merkle.tree_hash(n, hl))


def test_stored_hash_count_matches_appends() -> None:
    hl = HashList()
    for n in range(300):
        assert len(hl) == merkle.stored_hash_count(n)
        assert merkle.stored_hash_index(0, n) == len(hl)
        hl.hashes.extend(merkle.stored_hashes(n, record(n), hl))


def test_split_stored_hash_index_inverts() -> None:
    for index in range(3000):
        level, n = merkle.split_stored_hash_index(index)
        assert merkle.stored_hash_index(level, n) == index
    for level in range(0, 20):
        for n in (0, 1, 2, 3, 1000, 123457):
            assert merkle.split_stored_hash_index(merkle.stored_hash_index(level, n)) == (level, n)


def test_tile_for_index_and_hash_from_tile() -> None:
    hl = vector_log(1000)
    th = merkle.tree_hash(1000, hl)
    for index in range(merkle.stored_hash_index(0, 1000)):
        t = merkle.tile_for_index(8, index)
        data = merkle.read_tile_data(t, hl)
        assert merkle.hash_from_tile(t, data, index) == hl.hashes[index]
    assert th  # the log itself is the oracle here


@pytest.mark.parametrize(
    "old,new,want",
    [(1, 1, 0), (100, 101, 1), (1023, 1025, 3), (1024, 1030, 1), (1030, 2000, 1), (1030, 10000, 10),
     (49516517, 49516586, 3)],
)
def test_new_tiles_count(old: int, new: int, want: int) -> None:
    # Table from Go's TestNewTilesForSize (height 10).
    assert len(merkle.new_tiles(10, old, new)) == want


@pytest.mark.parametrize("height", [1, 2, 3, 8])
def test_tile_hash_reader_serves_every_hash(height: int) -> None:
    hl = build([f"leaf {i}".encode() for i in range(70)])
    for n in (1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33, 64, 70):
        tree = Tree(n, merkle.tree_hash(n, hl))
        reader = TileHashReader(tree, MemTiles(hl, height))
        indexes = list(range(merkle.stored_hash_index(0, n)))
        assert reader.read_hashes(indexes) == hl.hashes[: len(indexes)]
        for i in indexes[:: max(1, len(indexes) // 7)]:
            assert reader.read_hashes([i]) == [hl.hashes[i]]


def test_tile_hash_reader_refuses_tampered_tiles() -> None:
    # As Go's TestTileHashReader: any changed hash under the tree must be caught.
    hl = build([f"leaf {i}".encode() for i in range(40)])
    for n in (1, 6, 17, 32, 40):
        tree = Tree(n, merkle.tree_hash(n, hl))
        for index in range(merkle.stored_hash_index(0, n)):
            t, start, _ = merkle._tile_for_index(2, index)
            reader = TileHashReader(tree, MemTiles(hl, 2, tamper=t, flip=start))
            with pytest.raises(InconsistentTileError, match="downloaded inconsistent tile"):
                reader.read_hashes([index])


def test_tile_hash_reader_refuses_any_flipped_byte_in_height_8_tiles() -> None:
    # Tree 1000 shares stx tiles, which once let a full child tile go unauthenticated.
    hl = vector_log(1000)
    tree = Tree(1000, merkle.tree_hash(1000, hl))
    for record_n in (0, 255, 256, 300, 511, 700, 767, 800, 999):
        index = merkle.stored_hash_index(0, record_n)
        plan = MemTiles(hl, 8)
        TileHashReader(tree, plan).read_hashes([index])
        for t in plan.saved:
            for byte in (0, 31, t.W * 32 - 1):
                reader = TileHashReader(tree, MemTiles(hl, 8, tamper=t, flip=byte))
                with pytest.raises(InconsistentTileError):
                    reader.read_hashes([index])


def test_tile_hash_reader_saves_only_after_authentication() -> None:
    hl = vector_log(1000)
    tree = Tree(1000, merkle.tree_hash(1000, hl))
    bad = MemTiles(hl, 8, tamper=Tile(8, 0, 1, 256), flip=31)
    with pytest.raises(InconsistentTileError):
        TileHashReader(tree, bad).read_hashes([merkle.stored_hash_index(0, 300)])
    assert bad.saved == []
    good = MemTiles(hl, 8)
    TileHashReader(tree, good).read_hashes([merkle.stored_hash_index(0, 300)])
    assert Tile(8, 0, 1, 256) in good.saved


def test_tile_hash_reader_rejects_wrong_lengths_and_outside_indexes() -> None:
    hl = vector_log(1000)
    tree = Tree(1000, merkle.tree_hash(1000, hl))

    class Short(MemTiles):
        def read_tiles(self, tiles: Sequence[Tile]) -> list[bytes]:
            return [d[:-1] for d in super().read_tiles(tiles)]

    class Long(MemTiles):
        def read_tiles(self, tiles: Sequence[Tile]) -> list[bytes]:
            return [d + b"\x00" for d in super().read_tiles(tiles)]

    for cls in (Short, Long):
        with pytest.raises(TlogError, match="bad result slice"):
            TileHashReader(tree, cls(hl, 8)).read_hashes([0])
    with pytest.raises(TlogError, match="not in tree"):
        TileHashReader(tree, MemTiles(hl, 8)).read_hashes([merkle.stored_hash_index(0, 1000)])


# --- negative tests on proofs ----------------------------------------------------------------


def flip(h: bytes, bit: int = 0) -> bytes:
    """Return h with one bit flipped."""
    return bytes([h[0] ^ (1 << bit)]) + h[1:]


def test_check_record_negatives() -> None:
    hl = vector_log(1000)
    th = merkle.tree_hash(1000, hl)
    leaf = merkle.record_hash(record(500))
    p = merkle.prove_record(1000, 500, hl)
    for i in range(len(p)):
        with pytest.raises(ProofError):
            merkle.check_record([*p[:i], flip(p[i]), *p[i + 1:]], 1000, th, 500, leaf)
    with pytest.raises(ProofError):
        merkle.check_record(p[:-1], 1000, th, 500, leaf)  # short
    with pytest.raises(ProofError):
        merkle.check_record([*p, p[0]], 1000, th, 500, leaf)  # long
    with pytest.raises(ProofError):
        merkle.check_record(p, 1000, flip(th), 500, leaf)
    with pytest.raises(ProofError):
        merkle.check_record(p, 1000, th, 500, flip(leaf))
    with pytest.raises(ProofError):
        merkle.check_record(p, 1000, th, 501, leaf)
    with pytest.raises(InvalidInputError):
        merkle.check_record(p, 1000, th, 1000, leaf)
    with pytest.raises(InvalidInputError):
        merkle.prove_record(1000, 1000, hl)
    with pytest.raises(InvalidInputError):
        merkle.prove_record(10, -1, hl)


def test_check_tree_negatives() -> None:
    hl = vector_log(1000)
    th, h = merkle.tree_hash(1000, hl), merkle.tree_hash(500, hl)
    p = merkle.prove_tree(1000, 500, hl)
    for i in range(len(p)):
        with pytest.raises(ProofError):
            merkle.check_tree([*p[:i], flip(p[i], 7), *p[i + 1:]], 1000, th, 500, h)
    with pytest.raises(ProofError):
        merkle.check_tree(p[:-1], 1000, th, 500, h)
    with pytest.raises(ProofError):
        merkle.check_tree([*p, h], 1000, th, 500, h)
    with pytest.raises(ProofError):
        merkle.check_tree(p, 1000, th, 500, flip(h))
    with pytest.raises(ProofError):
        merkle.check_tree(p, 1000, flip(th), 500, h)
    with pytest.raises(ProofError):
        merkle.check_tree(p, 1000, th, 499, h)
    # Equal trees need an empty proof, and nothing else.
    merkle.check_tree([], 1000, th, 1000, th)
    with pytest.raises(ProofError):
        merkle.check_tree([th], 1000, th, 1000, th)
    with pytest.raises(InvalidInputError):
        merkle.check_tree(p, 1000, th, 1001, h)
    with pytest.raises(InvalidInputError):
        merkle.prove_tree(1000, 0, hl)


def test_short_hash_reader_is_an_error() -> None:
    class Lying:
        def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
            return [bytes(32)] * (len(indexes) - 1)

    with pytest.raises(TlogError, match="ReadHashes"):
        merkle.tree_hash(3, Lying())
    with pytest.raises(TlogError):
        HashList([bytes(32)]).read_hashes([-1])
    with pytest.raises(TlogError):
        HashList([bytes(32)]).read_hashes([1])


def test_hash_text_round_trip() -> None:
    h = hashlib.sha256(b"x").digest()
    assert merkle.parse_hash(merkle.format_hash(h)) == h
    for bad in ("", merkle.format_hash(h)[:-4], merkle.format_hash(h) + "AAAA", "!" * 44, "é"):
        with pytest.raises(TlogError):
            merkle.parse_hash(bad)


# --- tile paths --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tile,path",
    [
        (Tile(3, 4, 1234067, 1), "tile/3/4/x001/x234/067.p/1"),
        (Tile(3, 4, 1234067, 8), "tile/3/4/x001/x234/067"),
        (Tile(8, -1, 0, 11), "tile/8/data/000.p/11"),
        (Tile(8, 0, 999, 256), "tile/8/0/999"),
        (Tile(8, 0, 1000, 256), "tile/8/0/x001/000"),
        (Tile(30, 63, 0, 5), "tile/30/63/000.p/5"),
    ],
)
def test_tile_path_round_trip(tile: Tile, path: str) -> None:
    assert tile.path() == path
    assert merkle.parse_tile_path(path) == tile


@pytest.mark.parametrize(
    "path",
    [
        "", "tile", "tile/8/0", "tiles/8/0/000", "tile/8/0/0", "tile/8/0/0000", "tile/8/0/x000",
        "tile/8/0/001/002", "tile/8/0/x1/000", "tile/0/0/000", "tile/31/0/000", "tile/8/-1/000",
        "tile/8/64/000", "tile/+8/0/000", "tile/08/0/000", "tile/8/00/000", "tile/8/0/000.p/0",
        "tile/8/0/000.p/256", "tile/8/0/000.p/011", "tile/8/0/000.p/", "tile/8/0/.p/5",
        "tile/8/0/000.p", "tile/8/0/000/", "tile/8/0/x001/x234", "tile/8/data/-01", "tile/8/0/ 12",
        "tile/8/0/1_2", "tile/8/0/٠٠٠", "tile/8/data/000.p/5/6", "tile/8/0/x001/x234/067.p/1/",
        "tile/8/0/../000", "tile/99999999999999999999999/0/000",
    ],
)
def test_parse_tile_path_rejects(path: str) -> None:
    with pytest.raises(BadTilePathError):
        merkle.parse_tile_path(path)


def test_tile_parent() -> None:
    t = Tile(8, 0, 3, 232)
    assert merkle.tile_parent(t, 0, 1000) == t
    assert merkle.tile_parent(t, 1, 1000) == Tile(8, 1, 0, 3)
    assert merkle.tile_parent(t, 2, 1000) is None


def test_invalid_inputs() -> None:
    for f in (lambda: merkle.stored_hash_index(-1, 0), lambda: merkle.stored_hash_index(0, -1),
              lambda: merkle.split_stored_hash_index(-1), lambda: merkle.stored_hash_count(-1),
              lambda: merkle.tile_for_index(0, 5), lambda: merkle.new_tiles(0, 1, 2),
              lambda: merkle.tree_hash(-1, HashList()), lambda: merkle.read_tile_data(Tile(8, -1, 0, 1), HashList())):
        with pytest.raises(InvalidInputError):
            f()
    with pytest.raises(TlogError, match="too short"):
        merkle.hash_from_tile(Tile(8, 0, 0, 2), bytes(63), 0)
    with pytest.raises(TlogError, match="is in"):
        merkle.hash_from_tile(Tile(8, 0, 1, 2), bytes(64), 0)
