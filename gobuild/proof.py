"""Offline proofs of builds: a record, its number, its inclusion proof and a signed tree head in one file.

The file (served as `<result URL>/proof`, version 1):

    gobuild proof v1
    record <record number>
    <record text: one line, exactly as logged, with its trailing space for non-stripped builds>
    inclusion <k>
    <k lines: the inclusion proof hashes, std base64, in Go tlog's ProveRecord order>
    <blank line>
    <signed tree head: the note exactly as /tlog/latest serves it>

The tree head is the one of the log's first <record number>+1 records: the smallest tree holding
the record, so the file never changes and anyone holding a later head can check it is a prefix.
Checking needs no network: the key signed the head, the proof leads from the record to the head's
root hash, and the binary's SHA-256 prefix and size are the record's.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from .spec import Record, SpecError, sum_from_digest
from .tlog import merkle, note
from .tlog.merkle import Tree

HEADER = b"gobuild proof v1\n"
MAX_SIZE = 64 * 1024  # a proof of a record in a 2^64 log has 64 hashes; anything far bigger is not one
_DECIMAL = re.compile(rb"0|[1-9][0-9]{0,18}")


class ProofFileError(Exception):
    """A proof file that is malformed or does not verify; the message says which check failed."""


class ProvingLog(Protocol):
    """The part of the transparency log that makes proofs (tlog.server.TransparencyLog)."""

    def record(self, n: int, size: int | None = None) -> bytes: ...
    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]: ...
    def signed_head(self, size: int) -> bytes: ...


@dataclass(frozen=True)
class Proof:
    """What a proof file holds."""

    number: int
    record: bytes  # the record text, newline-terminated
    inclusion: tuple[bytes, ...]
    signed_head: bytes

    def pack(self) -> bytes:
        """The proof file's bytes."""
        lines = [HEADER, f"record {self.number}\n".encode(), self.record,
                 f"inclusion {len(self.inclusion)}\n".encode()]
        lines += [merkle.format_hash(h).encode() + b"\n" for h in self.inclusion]
        return b"".join([*lines, b"\n", self.signed_head])

    @classmethod
    def parse(cls, data: bytes) -> Proof:
        """Parse a proof file; raise ProofFileError naming what is wrong."""
        if len(data) > MAX_SIZE:
            raise ProofFileError(f"not a gobuild proof: larger than {MAX_SIZE} bytes")
        if not data.startswith(HEADER):
            first = data.split(b"\n", 1)[0][:60].decode("utf-8", "replace")
            if first.startswith("gobuild proof "):
                raise ProofFileError(f"unsupported proof version {first!r}, this gobuild reads v1")
            raise ProofFileError("not a gobuild proof: the first line must be 'gobuild proof v1'")
        lines = data[len(HEADER):].split(b"\n")
        number = _labelled(lines, 0, b"record")
        record = lines[1] + b"\n" if len(lines) > 1 else b""
        count = _labelled(lines, 2, b"inclusion")
        if count > 64 or len(lines) < 4 + count or lines[3 + count] != b"":
            raise ProofFileError("malformed proof: expected the inclusion hashes, then a blank line and the tree head")
        try:
            hashes = tuple(merkle.parse_hash(h.decode("ascii", "replace")) for h in lines[3:3 + count])
        except merkle.TlogError:
            raise ProofFileError("malformed proof: an inclusion hash is not 32 bytes of base64") from None
        return cls(number, record, hashes, b"\n".join(lines[4 + count:]))


def _labelled(lines: list[bytes], i: int, label: bytes) -> int:
    """The number on line i, which must read "<label> <decimal>"."""
    line = lines[i] if i < len(lines) else b""
    word, _, value = line.partition(b" ")
    if word != label or not _DECIMAL.fullmatch(value):
        raise ProofFileError(f"malformed proof: expected '{label.decode()} <number>', got {line[:60]!r}")
    return int(value)


def make(log: ProvingLog, number: int) -> Proof:
    """The proof that record number is in the log, against the smallest tree holding it."""
    size = number + 1
    return Proof(number, log.record(number), tuple(merkle.prove_record(size, number, log)), log.signed_head(size))


@dataclass(frozen=True)
class Checked:
    """A proof that verified: its record and the tree head it is included in."""

    record: Record
    tree: Tree
    log_name: str


def check(proof: Proof, verifier: note.Verifier) -> Checked:
    """Verify signature and inclusion (no network); raise ProofFileError with the failed check."""
    try:
        opened = note.open_note(proof.signed_head, [verifier])
    except note.UnverifiedNoteError as e:
        signers = ", ".join(f"{s.name}+{s.key_hash:08x}" for s in e.note.unverified_sigs) or "nobody"
        raise ProofFileError(f"the proof's tree head is not signed by {verifier.name}+{verifier.key_hash:08x} "
                         f"(signed by {signers}): a proof from another gobuild instance, or the wrong key") from None
    except note.InvalidSignatureError:
        raise ProofFileError(f"the proof's tree head has a bad signature by {verifier.name}: "
                         "the tree head was changed after signing") from None
    except note.NoteError as e:
        raise ProofFileError(f"the proof's tree head is not a signed note: {e}") from None
    try:
        tree = note.parse_tree(opened.text.encode())
    except note.MalformedTreeError:
        raise ProofFileError("the proof's signed note is not a tree head") from None
    try:
        record = Record.parse(proof.record)
    except SpecError as e:
        raise ProofFileError(f"the proof's record is malformed: {e}") from None
    if not 0 <= proof.number < tree.n:
        raise ProofFileError(f"record {proof.number} is not in the proof's tree of {tree.n} records")
    try:
        merkle.check_record(proof.inclusion, tree.n, tree.hash, proof.number, merkle.record_hash(proof.record))
    except merkle.TlogError:
        raise ProofFileError(f"the inclusion proof does not lead from record {proof.number} to the signed tree "
                         f"head of {tree.n} records: the record or the proof was changed") from None
    return Checked(record, tree, verifier.name)


def check_binary(record: Record, binary: BinaryIO) -> None:
    """Raise ProofFileError unless the binary's sum and size are the record's."""
    h = hashlib.sha256()
    size = 0
    while chunk := binary.read(1 << 20):
        h.update(chunk)
        size += len(chunk)
    got = sum_from_digest(h.digest())
    if got != record.sum or size != record.size:
        raise ProofFileError(f"the binary does not match the record: its sum is {got} ({size} bytes), "
                         f"the logged build has {record.sum} ({record.size} bytes)")


def read_file(path: Path) -> Proof:
    """Read and parse a proof file, refusing huge files before reading them."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SIZE + 1)
    except OSError as e:
        raise ProofFileError(f"reading proof {path}: {e.strerror or e}") from None
    return Proof.parse(data)
