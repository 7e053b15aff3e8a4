"""Ask peer gobuild instances, through their transparency logs, for the record of a spec."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path

import requests

from . import urls
from .failures import TemporaryFailure
from .spec import BuildSpec, Record, SpecError
from .tlog import client as tlogclient
from .tlog import note

log = logging.getLogger(__name__)

# Names (tlog key names) of the instances a verification request passed through. A peer asked
# with this header builds without asking any of them again: a mutual pair never waits on itself.
CHAIN_HEADER = "Gobuild-Verify-Chain"


class PeerUnavailable(TemporaryFailure):
    """A peer could not answer (down, slow, broken): retried on the next request, nothing stored."""


class PeerMismatch(TemporaryFailure):
    """A peer built different bytes (or a different record): nothing is logged or served."""


class PeerSecurityError(TemporaryFailure):
    """A peer's log is inconsistent with what we saw before: it carries the proof."""


@dataclass(frozen=True)
class Peer:
    """One verifier: its log's verifier key and base URL (".../tlog")."""

    key: str
    url: str

    @property
    def name(self) -> str:
        return note.Verifier.parse(self.key).name

    @property
    def state_name(self) -> str:
        """The directory of this peer's client state: by the whole key, so that a key fixed in the
        config starts afresh instead of clashing with the state of the wrong one."""
        return f"{self.name}-{hashlib.sha256(self.key.encode()).hexdigest()[:16]}"



def parse_peers(entries: Iterable[Mapping[str, str]]) -> list[Peer]:
    """Peers from config entries {"key": ..., "url": ...}; raises ValueError with a clear message."""
    peers = []
    for entry in entries:
        key = entry.get("key", "")
        try:
            name = note.Verifier.parse(key).name
        except note.NoteError as e:
            raise ValueError(f"verifier key {key!r}: {e}") from e
        peers.append(Peer(key, entry.get("url") or urls.default_tlog_url(name)))
    return peers


@dataclass
class PeerStatus:
    """When a peer last answered, and how."""

    last_answer: float | None = None
    last_error: str = ""
    mismatches: int = 0


@dataclass
class Verification:
    """Lookups in flight for one spec; check() waits for all and compares."""

    spec: BuildSpec
    futures: dict[Peer, Future[Record]]
    deadline: float
    verifier: Peers

    def records(self) -> dict[Peer, Record]:
        """Every peer's record, or PeerUnavailable naming the first peer that failed."""
        out = {}
        for peer, future in self.futures.items():
            try:
                out[peer] = future.result(timeout=max(0.0, self.deadline - time.monotonic()))
            except FutureTimeout:
                self.verifier.note_error(peer, "timed out")
                raise PeerUnavailable(f"build at verifier {peer.url} failed: no answer in time") from None
        return out

    def check(self, ours: Record) -> None:
        """Raise unless every peer logged exactly our record (spec, size and sum)."""
        for peer, theirs in self.records().items():
            if theirs != ours:
                self.verifier.note_mismatch(peer, self.spec)
                raise PeerMismatch(f"build mismatches: we got {ours.sum} (size {ours.size}), "
                               f"{peer.url} got {theirs.sum} (size {theirs.size}) for {theirs.spec}")


@dataclass
class Peers:
    """Our verifiers, asked in parallel, each through a verifying tlog client with its own state."""

    peers: list[Peer]
    state_dir: Path
    timeout: float
    own_name: str
    status: dict[Peer, PeerStatus] = field(default_factory=dict)
    # Told (peer url, seconds, "ok" | "error" | "mismatch", spec) of every answer: the metrics.
    observe: Callable[[str, float, str, BuildSpec], None] | None = None

    def __post_init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max(4, 4 * len(self.peers)), thread_name_prefix="verify")
        self._lock = threading.Lock()
        self.status = {p: PeerStatus() for p in self.peers}

    def start(self, spec: BuildSpec, chain: tuple[str, ...] = ()) -> Verification:
        """Start asking every peer not already in chain for spec's record."""
        chain = (*chain, self.own_name)
        asked = [p for p in self.peers if p.name not in chain]
        futures = {p: self._pool.submit(self._lookup, p, spec, chain) for p in asked}
        return Verification(spec, futures, time.monotonic() + self.timeout, self)

    def _lookup(self, peer: Peer, spec: BuildSpec, chain: tuple[str, ...]) -> Record:
        """One peer's verified record for spec (the peer builds it on demand)."""
        session = requests.Session()
        session.headers["User-Agent"] = "gobuild-verifier"
        session.headers[CHAIN_HEADER] = ",".join(chain)
        started, outcome = time.monotonic(), "error"
        try:
            client = tlogclient.Client(peer.url, peer.key, self._state_dir(peer), session, self.timeout)
            _, text = client.lookup(str(spec))
            record = Record.parse(text)
            outcome = "ok"
        except tlogclient.SecurityError as e:
            self.note_error(peer, "SECURITY ERROR")
            log.error("verifier %s: %s", peer.url, e)
            raise PeerSecurityError(f"verifier {peer.url}: {e}") from e
        except (tlogclient.ClientError, SpecError, requests.RequestException, OSError) as e:
            self.note_error(peer, str(e))
            raise PeerUnavailable(f"build at verifier {peer.url} failed: {e}") from e
        finally:
            session.close()
            if self.observe is not None:
                self.observe(peer.url, time.monotonic() - started, outcome, spec)
        self.note_answer(peer)
        return record

    def _state_dir(self, peer: Peer) -> Path:
        """peer's state directory; state kept by name alone (before keys named it) moves there."""
        path = self.state_dir / peer.state_name
        by_name = self.state_dir / peer.name
        if not path.exists() and peer.name not in (".", "..") and by_name.is_dir():
            with contextlib.suppress(OSError):
                if (by_name / "config" / "key").read_text().strip() == peer.key.strip():
                    by_name.rename(path)
        return path

    def note_answer(self, peer: Peer) -> None:
        with self._lock:
            self.status[peer].last_answer, self.status[peer].last_error = time.time(), ""

    def note_error(self, peer: Peer, error: str) -> None:
        with self._lock:
            self.status[peer].last_error = error.splitlines()[0][:300] if error else "error"

    def note_mismatch(self, peer: Peer, spec: BuildSpec) -> None:
        with self._lock:
            self.status[peer].mismatches += 1
        if self.observe is not None:
            self.observe(peer.url, 0.0, "mismatch", spec)
        log.error("verify mismatch: peer=%s spec=%s", peer.url, spec)

    def fetch_gz(self, peer: Peer, record: Record, dest: Path) -> None:
        """Download the peer's gzipped binary of record to dest (streamed; checked by the caller)."""
        url = urls.download_url(peer.url, record.spec, record.sum)
        try:
            with requests.get(url, timeout=self.timeout, stream=True,
                              headers={"User-Agent": "gobuild-verifier"}) as resp:
                if resp.status_code != 200:
                    raise PeerUnavailable(f"fetching binary from verifier {peer.url}: HTTP {resp.status_code}")
                with open(dest, "wb") as f:
                    for chunk in resp.iter_content(1 << 20):
                        f.write(chunk)
        except requests.RequestException as e:
            raise PeerUnavailable(f"fetching binary from verifier {peer.url}: {e}") from e
