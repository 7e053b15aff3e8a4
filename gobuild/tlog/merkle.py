"""Merkle tree of the transparency log: RFC 6962 hashing, tlog's stored-hash layout, tiles, proofs.

A port of the behaviour of Go's golang.org/x/mod/sumdb/tlog (tlog.go and tile.go), so that
hashes, proofs and tiles are byte-identical with the Go checksum database and the original
gobuild. Storage is injected through the HashReader protocol; failures only raise TlogError.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

HASH_SIZE = 32

# RFC 6962 section 2.1 domain separation: leaves and interior nodes can never collide.
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"

# The root of the empty tree is RFC 6962's SHA-256 of nothing, as golang.org/x/mod's tlog has it
# (older versions used 32 zero bytes; the original's client takes that as a fork of an empty log).
EMPTY_TREE_HASH = hashlib.sha256(b"").digest()

# Tile numbers are written three decimal digits per path element (x001/x234/567).
_PATH_BASE = 1000
_MAX_TILE_HEIGHT = 30
_MAX_TILE_LEVEL = 63


class TlogError(Exception):
    """Base class of every failure in the tlog package."""


class InvalidInputError(TlogError, ValueError):
    """Arguments outside the domain of a function (negative sizes, index past the tree)."""


class ProofError(TlogError):
    """A record or tree proof does not verify."""

    def __init__(self, message: str = "invalid transparency proof") -> None:
        super().__init__(message)


class InconsistentTileError(TlogError):
    """Tiles do not hash up to the tree they were supposed to belong to."""

    def __init__(self, message: str = "downloaded inconsistent tile") -> None:
        super().__init__(message)


class BadTilePathError(TlogError, ValueError):
    """A tile path that is not in tlog's canonical tile/H/L/NNN[.p/W] form."""

    def __init__(self, path: str) -> None:
        super().__init__(f"malformed tile path {path!r}")
        self.path = path


class HashReader(Protocol):
    """Reads stored hashes by their stored hash index (see stored_hash_index)."""

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        """Return one 32-byte hash per index, in order, or raise."""
        ...


class TileReader(Protocol):
    """Reads tiles (from a cache or a server) for TileHashReader."""

    def height(self) -> int:
        """Return the height of the tiles this reader serves."""
        ...

    def read_tiles(self, tiles: Sequence[Tile]) -> list[bytes]:
        """Return the (not yet trusted) data of each tile, W*32 bytes each."""
        ...

    def save_tiles(self, tiles: Sequence[Tile], data: Sequence[bytes]) -> None:
        """Note that these tiles were authenticated and may be stored persistently."""
        ...


class Tree(NamedTuple):
    """A tree head: record count and root hash."""

    n: int
    hash: bytes


class HashList:
    """An in-memory HashReader over a list of stored hashes (index i = list item i)."""

    def __init__(self, hashes: Sequence[bytes] | None = None) -> None:
        self.hashes: list[bytes] = list(hashes or [])

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        """Return the hashes at the given stored hash indexes."""
        for i in indexes:
            # Checked explicitly: a negative index would silently wrap around in a list.
            if not 0 <= i < len(self.hashes):
                raise TlogError(f"stored hash index {i} out of range")
        return [self.hashes[i] for i in indexes]

    def __len__(self) -> int:
        return len(self.hashes)


def format_hash(h: bytes) -> str:
    """Return the std-base64 text of a hash, as Go's Hash.String."""
    return base64.b64encode(h).decode("ascii")


def parse_hash(s: str) -> bytes:
    """Parse the std-base64 text of a 32-byte hash."""
    try:
        data = base64.b64decode(s.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise TlogError("malformed hash") from None
    if len(data) != HASH_SIZE:
        raise TlogError("malformed hash")
    return data


def _maxpow2(n: int) -> tuple[int, int]:
    """Return k, the largest power of two smaller than n, and log2(k)."""
    level = max((n - 1).bit_length() - 1, 0)
    return 1 << level, level


def record_hash(data: bytes) -> bytes:
    """Return the leaf hash of a record, SHA256(0x00 || data)."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the hash of an interior node, SHA256(0x01 || left || right)."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def stored_hash_index(level: int, n: int) -> int:
    """Map tree coordinates (level, n) to the dense stored-hash order (Crosby-Wallach 3.3)."""
    if level < 0 or n < 0:
        raise InvalidInputError(f"invalid stored hash coordinates ({level}, {n})")
    # Level L's n'th hash is written right after level L+1's (2n+1)'th hash, so walk down to
    # the rightmost leaf under it; that leaf is at n+n/2+n/4+... = 2n - popcount(n).
    leaf = ((n + 1) << level) - 1
    return 2 * leaf - leaf.bit_count() + level


def _trailing_zeros(x: int) -> int:
    """Return the number of trailing zero bits of x > 0."""
    return (x & -x).bit_length() - 1


def split_stored_hash_index(index: int) -> tuple[int, int]:
    """Return (level, n) such that stored_hash_index(level, n) == index."""
    if index < 0:
        raise InvalidInputError(f"invalid stored hash index {index}")
    # stored_hash_index(0, n) < 2n, so the record that wrote index is in [index/2, ...].
    n = index // 2
    index_n = stored_hash_index(0, n)
    while True:
        # Record n+1 starts right after record n's leaf and its completed subtrees.
        x = index_n + 1 + _trailing_zeros(n + 1)
        if x > index:
            break
        n += 1
        index_n = x
    level = index - index_n
    return level, n >> level


def stored_hash_count(n: int) -> int:
    """Return how many stored hashes a tree of n records has."""
    if n < 0:
        raise InvalidInputError(f"invalid tree size {n}")
    if n == 0:
        return 0
    # The leaf hash of the last record, plus one hash per subtree it completes.
    return stored_hash_index(0, n - 1) + 1 + _trailing_zeros(n)


def stored_hashes(n: int, data: bytes, reader: HashReader) -> list[bytes]:
    """Return the hashes to store (from index stored_hash_index(0, n)) when adding record n."""
    return stored_hashes_for_record_hash(n, record_hash(data), reader)


def stored_hashes_for_record_hash(n: int, h: bytes, reader: HashReader) -> list[bytes]:
    """Like stored_hashes, given the record's leaf hash instead of its data."""
    if n < 0:
        raise InvalidInputError(f"invalid record number {n}")
    # Each trailing 1 bit of n completes a subtree, consuming the hash of its left sibling.
    m = _trailing_zeros(n + 1)
    indexes = [stored_hash_index(i, (n >> i) - 1) for i in reversed(range(m))]
    old = _read(reader, indexes)
    hashes = [h]
    for i in range(m):
        h = node_hash(old[m - 1 - i], h)
        hashes.append(h)
    return hashes


def _read(reader: HashReader, indexes: list[int]) -> list[bytes]:
    """Read hashes and check the reader kept its contract."""
    if not indexes:
        return []
    hashes = reader.read_hashes(indexes)
    if len(hashes) != len(indexes):
        raise TlogError(f"tlog: ReadHashes({len(indexes)} indexes) = {len(hashes)} hashes")
    for h in hashes:
        if len(h) != HASH_SIZE:
            raise TlogError(f"tlog: ReadHashes returned a {len(h)}-byte hash")
    return hashes


def _sub_tree_index(lo: int, hi: int, need: list[int]) -> list[int]:
    """Append the stored indexes needed for the hash of records [lo, hi) to need."""
    while lo < hi:
        k, level = _maxpow2(hi - lo + 1)
        assert lo & (k - 1) == 0, "tlog: bad math in subTreeIndex"
        need.append(stored_hash_index(level, lo >> level))
        lo += k
    return need


def _sub_tree_hash(lo: int, hi: int, hashes: list[bytes]) -> tuple[bytes, list[bytes]]:
    """Hash records [lo, hi) from the hashes _sub_tree_index asked for; return leftovers."""
    # The left side is a complete 2^level subtree read from storage; the right is the fringe.
    num_tree = 0
    while lo < hi:
        k, _ = _maxpow2(hi - lo + 1)
        assert lo & (k - 1) == 0 and lo < hi, "tlog: bad math in subTreeHash"
        num_tree += 1
        lo += k
    assert len(hashes) >= num_tree, "tlog: bad index math in subTreeHash"
    h = hashes[num_tree - 1]
    for i in range(num_tree - 2, -1, -1):
        h = node_hash(hashes[i], h)
    return h, hashes[num_tree:]


def tree_hash(n: int, reader: HashReader) -> bytes:
    """Return the root hash of the tree of n records (EMPTY_TREE_HASH for n == 0)."""
    if n < 0:
        raise InvalidInputError(f"invalid tree size {n}")
    if n == 0:
        return EMPTY_TREE_HASH
    indexes = _sub_tree_index(0, n, [])
    h, rest = _sub_tree_hash(0, n, _read(reader, indexes))
    assert not rest, "tlog: bad index math in TreeHash"
    return h


def _leaf_proof_index(lo: int, hi: int, n: int, need: list[int]) -> list[int]:
    """Append the indexes for the proof that leaf n is in subtree [lo, hi) to need."""
    assert lo <= n < hi, "tlog: bad math in leafProofIndex"
    if lo + 1 == hi:
        return need
    k, _ = _maxpow2(hi - lo)
    if n < lo + k:
        _leaf_proof_index(lo, lo + k, n, need)
        _sub_tree_index(lo + k, hi, need)
    else:
        _sub_tree_index(lo, lo + k, need)
        _leaf_proof_index(lo + k, hi, n, need)
    return need


def _leaf_proof(lo: int, hi: int, n: int, hashes: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """Build the proof that leaf n is in subtree [lo, hi); return it and leftover hashes."""
    assert lo <= n < hi, "tlog: bad math in leafProof"
    if lo + 1 == hi:
        # The verifier knows the leaf hash itself.
        return [], hashes
    k, _ = _maxpow2(hi - lo)
    if n < lo + k:
        p, hashes = _leaf_proof(lo, lo + k, n, hashes)
        th, hashes = _sub_tree_hash(lo + k, hi, hashes)
    else:
        th, hashes = _sub_tree_hash(lo, lo + k, hashes)
        p, hashes = _leaf_proof(lo + k, hi, n, hashes)
    return [*p, th], hashes


def prove_record(t: int, n: int, reader: HashReader) -> list[bytes]:
    """Return the proof that the tree of size t contains record n (RFC 6962 audit path)."""
    if t < 0 or n < 0 or n >= t:
        raise InvalidInputError("tlog: invalid inputs in ProveRecord")
    indexes = _leaf_proof_index(0, t, n, [])
    if not indexes:
        return []
    p, rest = _leaf_proof(0, t, n, _read(reader, indexes))
    assert not rest, "tlog: bad index math in ProveRecord"
    return p


def check_record(proof: Sequence[bytes], t: int, th: bytes, n: int, h: bytes) -> None:
    """Raise ProofError unless proof shows that tree (t, th) has record n with leaf hash h."""
    if t < 0 or n < 0 or n >= t:
        raise InvalidInputError("tlog: invalid inputs in CheckRecord")
    if _run_record_proof(list(proof), 0, t, n, h) != th:
        raise ProofError()


def _run_record_proof(p: list[bytes], lo: int, hi: int, n: int, leaf: bytes) -> bytes:
    """Return the hash of subtree [lo, hi) implied by proof p for leaf n."""
    assert lo <= n < hi, "tlog: bad math in runRecordProof"
    if lo + 1 == hi:
        # The proof must not carry unnecessary hashes.
        if p:
            raise ProofError()
        return leaf
    if not p:
        raise ProofError()
    k, _ = _maxpow2(hi - lo)
    if n < lo + k:
        return node_hash(_run_record_proof(p[:-1], lo, lo + k, n, leaf), p[-1])
    return node_hash(p[-1], _run_record_proof(p[:-1], lo + k, hi, n, leaf))


def _tree_proof_index(lo: int, hi: int, n: int, need: list[int]) -> list[int]:
    """Append the indexes for the consistency sub-proof of subtree [lo, hi) to need."""
    assert lo < n <= hi, "tlog: bad math in treeProofIndex"
    if n == hi:
        return need if lo == 0 else _sub_tree_index(lo, hi, need)
    k, _ = _maxpow2(hi - lo)
    if n <= lo + k:
        _tree_proof_index(lo, lo + k, n, need)
        _sub_tree_index(lo + k, hi, need)
    else:
        _sub_tree_index(lo, lo + k, need)
        _tree_proof_index(lo + k, hi, n, need)
    return need


def _tree_proof(lo: int, hi: int, n: int, hashes: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """Build the consistency sub-proof of subtree [lo, hi); return it and leftover hashes."""
    assert lo < n <= hi, "tlog: bad math in treeProof"
    if n == hi:
        if lo == 0:
            # This subtree is exactly the old tree, whose hash the verifier has.
            return [], hashes
        th, hashes = _sub_tree_hash(lo, hi, hashes)
        return [th], hashes
    k, _ = _maxpow2(hi - lo)
    if n <= lo + k:
        p, hashes = _tree_proof(lo, lo + k, n, hashes)
        th, hashes = _sub_tree_hash(lo + k, hi, hashes)
    else:
        th, hashes = _sub_tree_hash(lo, lo + k, hashes)
        p, hashes = _tree_proof(lo + k, hi, n, hashes)
    return [*p, th], hashes


def prove_tree(t: int, n: int, reader: HashReader) -> list[bytes]:
    """Return the proof that the tree of size t extends the tree of size n (RFC 6962 2.1.2)."""
    if t < 1 or n < 1 or n > t:
        raise InvalidInputError("tlog: invalid inputs in ProveTree")
    indexes = _tree_proof_index(0, t, n, [])
    if not indexes:
        return []
    p, rest = _tree_proof(0, t, n, _read(reader, indexes))
    assert not rest, "tlog: bad index math in ProveTree"
    return p


def check_tree(proof: Sequence[bytes], t: int, th: bytes, n: int, h: bytes) -> None:
    """Raise ProofError unless proof shows that tree (t, th) extends tree (n, h)."""
    if t < 1 or n < 1 or n > t:
        raise InvalidInputError("tlog: invalid inputs in CheckTree")
    h2, th2 = _run_tree_proof(list(proof), 0, t, n, h)
    if th2 != th or h2 != h:
        raise ProofError()


def _run_tree_proof(p: list[bytes], lo: int, hi: int, n: int, old: bytes) -> tuple[bytes, bytes]:
    """Return the implied (old tree, new tree) hashes of subtree [lo, hi) from proof p."""
    assert lo < n <= hi, "tlog: bad math in runTreeProof"
    if n == hi:
        if lo == 0:
            if p:
                raise ProofError()
            return old, old
        if len(p) != 1:
            raise ProofError()
        return p[0], p[0]
    if not p:
        raise ProofError()
    k, _ = _maxpow2(hi - lo)
    if n <= lo + k:
        oh, th = _run_tree_proof(p[:-1], lo, lo + k, n, old)
        return oh, node_hash(th, p[-1])
    oh, th = _run_tree_proof(p[:-1], lo + k, hi, n, old)
    return node_hash(p[-1], oh), node_hash(p[-1], th)


@dataclass(frozen=True, slots=True)
class Tile:
    """A tile: W consecutive hashes at tree level H*L from offset N*2^H (L == -1: record data)."""

    H: int  # height, 1..30
    L: int  # level in the tiling, -1 (data) .. 63
    N: int  # number within the level, >= 0
    W: int  # width, 1..2^H; 2^H is a full tile

    @property
    def is_full(self) -> bool:
        """Whether the tile has all 2^H entries (and so can never change)."""
        return self.W == 1 << self.H

    def path(self) -> str:
        """Return the tile coordinate path, e.g. tile/8/0/x001/x234/067.p/5."""
        n = self.N
        n_str = f"{n % _PATH_BASE:03d}"
        while n >= _PATH_BASE:
            n //= _PATH_BASE
            n_str = f"x{n % _PATH_BASE:03d}/{n_str}"
        p_str = "" if self.is_full else f".p/{self.W}"
        level = "data" if self.L == -1 else str(self.L)
        return f"tile/{self.H}/{level}/{n_str}{p_str}"


_DIGITS = re.compile(r"[0-9]+")


def _atoi(s: str) -> int | None:
    """Parse plain decimal digits (no sign, space or underscore, unlike int())."""
    return int(s) if _DIGITS.fullmatch(s) and len(s) <= 18 else None


def parse_tile_path(path: str) -> Tile:
    """Parse a tile coordinate path (tile/H/L/NNN[.p/W], L may be "data"); canonical only."""
    f = path.split("/")
    if len(f) < 4 or f[0] != "tile":
        raise BadTilePathError(path)
    h = _atoi(f[1])
    is_data = f[2] == "data"
    level = 0 if is_data else _atoi(f[2])
    if h is None or level is None or not 1 <= h <= _MAX_TILE_HEIGHT or level > _MAX_TILE_LEVEL:
        raise BadTilePathError(path)
    w = 1 << h
    if f[-2].endswith(".p"):
        ww = _atoi(f[-1])
        if ww is None or not 0 < ww < w:
            raise BadTilePathError(path)
        w = ww
        f = [*f[:-2], f[-2][:-len(".p")]]
    n = 0
    for s in f[3:]:
        nn = _atoi(s[1:] if s.startswith("x") else s)
        if nn is None or nn >= _PATH_BASE:
            raise BadTilePathError(path)
        n = n * _PATH_BASE + nn
    t = Tile(h, -1 if is_data else level, n, w)
    # Only the canonical spelling is accepted, so each tile has exactly one path (cacheable).
    if t.path() != path:
        raise BadTilePathError(path)
    return t


def _tile_for_index(h: int, index: int) -> tuple[Tile, int, int]:
    """Return the least-width tile of height h holding index, and its byte range in the data."""
    level, n = split_stored_hash_index(index)
    tl = level // h
    level -= tl * h  # level within the tile
    tn = (n << level) >> h
    n -= (tn << h) >> level  # n within the tile at that level
    w = (n + 1) << level
    return Tile(h, tl, tn, w), (n << level) * HASH_SIZE, ((n + 1) << level) * HASH_SIZE


def tile_for_index(h: int, index: int) -> Tile:
    """Return the tile of height h >= 1 and least width that stores the given hash index."""
    if h <= 0:
        raise InvalidInputError(f"TileForIndex: invalid height {h}")
    return _tile_for_index(h, index)[0]


def _tile_hash(data: bytes) -> bytes:
    """Return the subtree hash over the 2^k hashes in data."""
    assert data, "bad math in tileHash"
    if len(data) == HASH_SIZE:
        return data
    half = len(data) // 2
    return node_hash(_tile_hash(data[:half]), _tile_hash(data[half:]))


def hash_from_tile(t: Tile, data: bytes, index: int) -> bytes:
    """Return the hash at stored index from tile t's data (t covers index, maybe wider)."""
    if not (1 <= t.H <= _MAX_TILE_HEIGHT and 0 <= t.L <= _MAX_TILE_LEVEL and 1 <= t.W <= 1 << t.H):
        raise TlogError(f"invalid tile {t.path()}")
    if len(data) < t.W * HASH_SIZE:
        raise TlogError(f"data len {len(data)} too short for tile {t.path()}")
    t1, start, end = _tile_for_index(t.H, index)
    if t.L != t1.L or t.N != t1.N or t.W < t1.W:
        raise TlogError(f"index {index} is in {t1.path()} not {t.path()}")
    return _tile_hash(data[start:end])


def new_tiles(h: int, old_size: int, new_size: int) -> list[Tile]:
    """Return the tiles of height h to publish when the tree grows from old_size to new_size."""
    if h <= 0:
        raise InvalidInputError(f"NewTiles: invalid height {h}")
    tiles = []
    level = 0
    while new_size >> (h * level) > 0:
        old_n = old_size >> (h * level)
        new_n = new_size >> (h * level)
        for n in range(old_n >> h, new_n >> h):
            tiles.append(Tile(h, level, n, 1 << h))
        # Only the newest partial tile, and only if this level changed (current Go behaviour;
        # older Go also listed every intermediate width).
        n = new_n >> h
        w = new_n - (n << h)
        if w > 0 and new_n > old_n:
            tiles.append(Tile(h, level, n, w))
        level += 1
    return tiles


def tile_hash_indexes(t: Tile) -> list[int]:
    """Return the stored hash indexes whose hashes make up hash tile t, in order."""
    if t.L < 0:
        raise InvalidInputError(f"{t.path()} is a data tile, not a hash tile")
    start = t.N << t.H
    return [stored_hash_index(t.H * t.L, start + i) for i in range(t.W)]


def read_tile_data(t: Tile, reader: HashReader) -> bytes:
    """Return the data of hash tile t: its W hashes concatenated."""
    return b"".join(_read(reader, tile_hash_indexes(t)))


def tile_parent(t: Tile, k: int, n: int) -> Tile | None:
    """Return t's k'th tile parent in the tiles of a tree of size n, or None if there is none."""
    level = t.L + k
    num = t.N >> (k * t.H)
    w = 1 << t.H
    limit = n >> (level * t.H)
    if (num << t.H) + w >= limit:
        if (num << t.H) >= limit:
            return None
        w = limit - (num << t.H)
    return Tile(t.H, level, num, w)


class TileHashReader:
    """A HashReader that serves hashes of a tree from tiles, authenticating each against it."""

    def __init__(self, tree: Tree, tile_reader: TileReader) -> None:
        self.tree = tree
        self.tile_reader = tile_reader

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        """Return the hashes at indexes; raise InconsistentTileError on a forged tile."""
        if not indexes:
            return []
        h = self.tile_reader.height()
        n = self.tree.n
        tile_order: dict[Tile, int] = {}
        tiles: list[Tile] = []

        def add(t: Tile) -> int:
            tile_order[t] = len(tiles)
            tiles.append(t)
            return tile_order[t]

        # First the tiles that recompute the tree hash: if it matches, they are authentic.
        stx = _sub_tree_index(0, n, [])
        stx_tile_order = []
        for x in stx:
            t = tile_parent(_tile_for_index(h, x)[0], 0, n)
            assert t is not None, "bad math in tileHashReader"
            stx_tile_order.append(tile_order[t] if t in tile_order else add(t))
        # Tiles from here on are authenticated by their parent, not by the tree hash. (Older
        # Go started this at len(stx), which skips children when stx tiles were shared.)
        first_child = len(tiles)

        # Then the tiles holding the indexes, with the parents that authenticate them.
        index_tile_order = []
        for x in indexes:
            if x < 0 or x >= stored_hash_index(0, n):
                raise TlogError("indexes not in tree")
            tile = _tile_for_index(h, x)[0]
            k = 0
            while True:
                p = tile_parent(tile, k, n)
                if p is None:
                    raise TlogError(f"bad math in tileHashReader: {n} {x}: no authenticated parent")
                if p in tile_order:
                    break
                k += 1
            j = tile_order[p]
            # Walk back down, so that parents come before children in tiles.
            for kk in range(k - 1, -1, -1):
                p = tile_parent(tile, kk, n)
                if p is None or not p.is_full:
                    raise TlogError(f"bad math in tileHashReader: {n} {x} {p}")
                j = add(p)
            index_tile_order.append(j)

        data = self.tile_reader.read_tiles(tiles)
        if len(data) != len(tiles):
            raise TlogError(f"TileReader returned bad result slice (len={len(data)}, want {len(tiles)})")
        for t, d in zip(tiles, data, strict=False):
            if len(d) != t.W * HASH_SIZE:
                raise TlogError(
                    f"TileReader returned bad result slice ({t.path()} len={len(d)}, want {t.W * HASH_SIZE})"
                )

        th = hash_from_tile(tiles[stx_tile_order[-1]], data[stx_tile_order[-1]], stx[-1])
        for i in range(len(stx) - 2, -1, -1):
            th = node_hash(hash_from_tile(tiles[stx_tile_order[i]], data[stx_tile_order[i]], stx[i]), th)
        if th != self.tree.hash:
            # At least one tile is wrong, but we cannot tell which.
            raise InconsistentTileError()

        # Full tiles below are authenticated by the (already authenticated) parent hash.
        for i in range(first_child, len(tiles)):
            t = tiles[i]
            p = tile_parent(t, 1, n)
            if p is None or p not in tile_order:
                raise TlogError(f"bad math in tileHashReader {n} {list(indexes)}: lost parent of {t}")
            ph = hash_from_tile(p, data[tile_order[p]], stored_hash_index(p.L * p.H, t.N))
            if ph != _tile_hash(data[i]):
                raise InconsistentTileError()

        self.tile_reader.save_tiles(tiles, data)
        return [hash_from_tile(tiles[j], data[j], x) for j, x in zip(index_tile_order, indexes, strict=False)]
