"""Verifying client of a transparency log (gobuild's or the Go checksum database), with local state.

A port of the logic of Go's golang.org/x/mod/sumdb client as gobuild uses it: look a key up,
check the signed tree head, prove it consistent with the last head this client accepted (trust
on first use), prove the record included, and remember the new head and the verified tiles.

State under state_dir (the caller picks one directory per verifier key name):
  config/key               the verifier key, written on first use
  config/<name>/latest     the last accepted signed tree head (absent: the empty tree)
  cache/<name>/tile/H/...  authenticated tiles
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from pathlib import Path

import requests
from filelock import FileLock

from gobuild.durable import write_atomic
from gobuild.tlog import merkle, note
from gobuild.tlog.merkle import EMPTY_TREE_HASH, Tile, TileHashReader, Tree

TILE_HEIGHT = 8  # what gobuild and the Go checksum database serve
MAX_RESPONSE = 1 << 20  # lookups and tiles are small; refuse to buffer anything huge
USER_AGENT = "gobuild-tlog-client"

# When a tree head arrived, relative to the latest one we know (as Go's msgPast etc.).
_PAST, _NOW, _FUTURE = 1, 2, 3


class ClientError(Exception):
    """Base class of client failures."""


class StateError(ClientError):
    """Local state that does not fit the configured verifier key."""


class FetchError(ClientError):
    """The server could not be reached or answered other than 200 (server_status: its answer, if any)."""

    def __init__(self, message: str, server_status: int | None = None) -> None:
        super().__init__(message)
        self.server_status = server_status


class VerificationError(ClientError):
    """A server response that does not verify (bad signature, tile, record or format)."""


class SecurityError(ClientError):
    """Proof that the server forked or rewrote its log; the message holds the evidence."""


class _WriteConflict(Exception):
    """The config file changed since it was read."""


def _indent(b: bytes) -> bytes:
    """Indent continuation lines with a tab, as the Go client's security report does."""
    return b.replace(b"\n", b"\n\t")


def _check_name(name: str) -> str:
    """Return the key name if it is safe as a path below state_dir."""
    parts = name.split("/")
    if "\\" in name or any(p in ("", ".", "..") for p in parts):
        raise StateError(f"verifier key name {name!r} cannot be used as a directory name")
    return name


def _read_or_empty(path: Path) -> bytes:
    """Return the file's content, or b"" if it does not exist."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


class Client:
    """Looks records up in one remote log and verifies them against its signed history."""

    def __init__(
        self,
        base_url: str,
        verifier_key: str,
        state_dir: Path,
        session: requests.Session | None = None,
        timeout: float = 30,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        try:
            self.verifier = note.Verifier.parse(verifier_key.strip())
        except note.KeyFormatError as e:
            raise StateError(f"bad verifier key: {e}") from None
        self.name = _check_name(self.verifier.name)
        self.state_dir = Path(state_dir)
        self.timeout = timeout
        if session is None:
            session = requests.Session()
            session.headers["User-Agent"] = USER_AGENT
        self._session = session
        self._init_lock = threading.Lock()
        self._initialized = False
        self._latest_lock = threading.Lock()
        self._latest = Tree(0, EMPTY_TREE_HASH)
        self._latest_msg = b""
        self._tiles = _TileReader(self)

    # --- public -------------------------------------------------------------------------------

    def lookup(self, key: str) -> tuple[int, bytes]:
        """Return (record number, record text) for key, verified against the log's history."""
        self._init()
        data = self._get("/lookup/" + key)
        try:
            record_id, text, tree_msg = note.parse_record(data)
        except note.MalformedRecordError as e:
            raise VerificationError(f"lookup {key}: {e}") from None
        self._merge_latest(tree_msg)
        self._check_record(record_id, text)
        return record_id, text

    def merge_head(self, msg: bytes) -> None:
        """Accept a signed tree head from elsewhere (a proof file) only if it is on the log's timeline."""
        self._init()
        self._merge_latest(msg)

    def refresh(self) -> tuple[Tree, bytes]:
        """Fetch the server's current tree head, check it extends what we accepted, and return it."""
        self._init()
        self._merge_latest(self._get("/latest"))
        return self.latest()

    def latest(self) -> tuple[Tree, bytes]:
        """Return the latest accepted tree and its signed note (b"" for the empty tree)."""
        self._init()
        with self._latest_lock:
            return self._latest, self._latest_msg

    # --- state ----------------------------------------------------------------------------------

    @property
    def _key_path(self) -> Path:
        return self.state_dir / "config" / "key"

    @property
    def _latest_path(self) -> Path:
        return self.state_dir / "config" / self.name / "latest"

    def _tile_cache_path(self, tile: Tile) -> Path:
        return self.state_dir / "cache" / self.name / tile.path()

    def _init(self) -> None:
        """Check or record the key, then load the stored tree head (once)."""
        with self._init_lock:
            if self._initialized:
                return
            vkey = str(self.verifier)
            stored = _read_or_empty(self._key_path).decode("utf-8", "replace").strip()
            if not stored:
                write_atomic(self._key_path, (vkey + "\n").encode())
            elif stored != vkey:
                raise StateError("different key for name in verifierkey")
            self._merge_latest(_read_or_empty(self._latest_path))
            self._initialized = True

    def _write_latest(self, old: bytes, new: bytes) -> None:
        """Replace the stored tree head old with new, or raise _WriteConflict (compare-and-swap)."""
        self._latest_path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self._latest_path) + ".lock"):
            if _read_or_empty(self._latest_path) != old:
                raise _WriteConflict()
            write_atomic(self._latest_path, new)

    # --- remote -------------------------------------------------------------------------------

    def _get(self, path: str) -> bytes:
        """Fetch base_url + path; anything but a 200 is a FetchError."""
        url = self.base_url + path
        chunks: list[bytes] = []
        size = 0
        try:
            with self._session.get(url, timeout=self.timeout, stream=True) as resp:
                if resp.status_code != 200:
                    reason = _first_line(next(resp.iter_content(chunk_size=512), b""))
                    raise FetchError(f"http get {url}: {resp.status_code} {resp.reason}"
                                      + (f": {reason}" if reason else ""), resp.status_code)
                for chunk in resp.iter_content(chunk_size=1 << 16):
                    size += len(chunk)
                    if size > MAX_RESPONSE:
                        raise FetchError(f"http get {url}: response larger than {MAX_RESPONSE} bytes")
                    chunks.append(chunk)
        except requests.RequestException as e:
            raise FetchError(f"http get {url}: {e}") from None
        return b"".join(chunks)

    # --- verification (Go's mergeLatest, checkTrees, checkRecord) -----------------------------

    def _merge_latest(self, msg: bytes) -> None:
        """Merge a signed tree head into the latest one, in memory and in config."""
        if self._merge_latest_mem(msg) != _FUTURE:
            return
        # Our timeline moved forward: write it back, merging heads other clients stored.
        while True:
            stored = _read_or_empty(self._latest_path)
            if self._merge_latest_mem(stored) != _PAST:
                return
            with self._latest_lock:
                latest_msg = self._latest_msg
            try:
                self._write_latest(stored, latest_msg)
                return
            except _WriteConflict:
                continue

    def _merge_latest_mem(self, msg: bytes) -> int:
        """Merge msg into the in-memory latest head; return when msg was relative to it."""
        if not msg:
            # The unsigned empty tree: consistent with every timeline.
            with self._latest_lock:
                return _NOW if self._latest.n == 0 else _PAST
        try:
            opened = note.open_note(msg, [self.verifier])
        except note.NoteError as e:
            raise VerificationError(f"reading tree note: {e}\nnote:\n{msg.decode('utf-8', 'replace')}") from None
        try:
            tree = note.parse_tree(opened.text.encode("utf-8"))
        except note.MalformedTreeError as e:
            raise VerificationError(f"reading tree: {e}\ntree:\n{opened.text}") from None

        with self._latest_lock:
            latest, latest_msg = self._latest, self._latest_msg
        while True:
            if tree.n <= latest.n:
                # An older (or the same) head must be on our timeline.
                self._check_trees(tree, msg, latest, latest_msg)
                return _PAST if tree.n < latest.n else _NOW
            self._check_trees(latest, latest_msg, tree, msg)
            with self._latest_lock:
                # Another lookup may have moved latest meanwhile; then check again.
                if self._latest == latest:
                    self._latest, self._latest_msg = tree, msg
                    return _FUTURE
                latest, latest_msg = self._latest, self._latest_msg

    def _check_trees(self, older: Tree, older_note: bytes, newer: Tree, newer_note: bytes) -> None:
        """Check that older is a prefix of newer; raise SecurityError with the proof if not."""
        thr = TileHashReader(newer, self._tiles)
        try:
            h = merkle.tree_hash(older.n, thr)
        except merkle.TlogError as e:
            against = "" if older.n == newer.n else f" against tree#{newer.n}"
            raise VerificationError(f"checking tree#{older.n}{against}: {e}") from None
        if h == older.hash:
            return
        raise SecurityError(self._misbehavior_report(older_note, newer, newer_note, older.n, h, thr))

    @staticmethod
    def _misbehavior_report(
        older_note: bytes, newer: Tree, newer_note: bytes, n: int, h: bytes, thr: TileHashReader
    ) -> str:
        """Return the Go client's security report: both notes and the proof that they fork."""
        out = (
            b"SECURITY ERROR\ngo.sum database server misbehavior detected!\n\n"
            + b"old database:\n\t" + _indent(older_note) + b"\n"
            + b"new database:\n\t" + _indent(newer_note) + b"\n"
            + b"proof of misbehavior:\n\t" + merkle.format_hash(h).encode()
        )
        # The tiles needed here were fetched and authenticated by tree_hash just before.
        try:
            proof = merkle.prove_tree(newer.n, n, thr)
            merkle.check_tree(proof, newer.n, newer.hash, n, h)
        except merkle.ProofError:
            out += b"\tinternal error: generated inconsistent proof\n"
        except (merkle.TlogError, ClientError) as e:
            out += f"\tinternal error: {e}\n".encode()
        else:
            for p in proof:
                out += b"\n\t" + merkle.format_hash(p).encode()
        return out.decode("utf-8", "replace")

    def _check_record(self, record_id: int, text: bytes) -> None:
        """Check that record record_id of the latest tree has this text."""
        with self._latest_lock:
            latest = self._latest
        if not 0 <= record_id < latest.n:
            raise VerificationError(f"cannot validate record {record_id} in tree of size {latest.n}")
        try:
            got = TileHashReader(latest, self._tiles).read_hashes([merkle.stored_hash_index(0, record_id)])
        except merkle.TlogError as e:
            raise VerificationError(f"checking record {record_id} in tree#{latest.n}: {e}") from None
        if got[0] != merkle.record_hash(text):
            raise VerificationError("cannot authenticate record data in server response")


class _TileReader:
    """The client's merkle.TileReader: disk cache first, then the server; saves verified tiles."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._saved: set[Tile] = set()
        self._lock = threading.Lock()

    def height(self) -> int:
        """Return the tile height in use."""
        return TILE_HEIGHT

    def read_tiles(self, tiles: Sequence[Tile]) -> list[bytes]:
        """Return the (not yet authenticated) data of each tile."""
        return [self._read_tile(t) for t in tiles]

    def _read_cache(self, tile: Tile) -> bytes | None:
        """Return a cached tile, or None if absent or not the right size."""
        try:
            data = self.client._tile_cache_path(tile).read_bytes()
        except OSError:
            return None
        return data if len(data) == tile.W * merkle.HASH_SIZE else None

    def _read_tile(self, tile: Tile) -> bytes:
        """Return tile data from the cache, a cached full tile, the server, or its full tile."""
        data = self._read_cache(tile)
        if data is not None:
            self._mark_saved(tile)
            return data
        full = Tile(tile.H, tile.L, tile.N, 1 << tile.H)
        if tile != full:
            data = self._read_cache(full)
            if data is not None:
                # Only authenticated tiles are cached, so a prefix of one is authentic too.
                self._mark_saved(tile)
                return data[: tile.W * merkle.HASH_SIZE]
        try:
            return self.client._get("/" + tile.path())
        except FetchError as err:
            if tile == full:
                raise
            # The server may only keep the full tile once it is complete.
            try:
                data = self.client._get("/" + full.path())
            except FetchError:
                raise err from None
            return data[: len(data) // full.W * tile.W]

    def _mark_saved(self, tile: Tile) -> None:
        """Remember that tile is on disk already."""
        with self._lock:
            self._saved.add(tile)

    def save_tiles(self, tiles: Sequence[Tile], data: Sequence[bytes]) -> None:
        """Write authenticated tiles to the disk cache (best effort, like Go)."""
        for tile, content in zip(tiles, data, strict=False):
            with self._lock:
                if tile in self._saved:
                    continue
                self._saved.add(tile)
            with contextlib.suppress(OSError):  # a later run will fetch and verify it again
                write_atomic(self.client._tile_cache_path(tile), content)


def _first_line(body: bytes) -> str:
    """The server's one-line reason from an error body, made safe to print."""
    line = body.decode("utf-8", "replace").strip().split("\n", 1)[0].strip()[:300]
    return "".join(c if c.isprintable() else "?" for c in line)
