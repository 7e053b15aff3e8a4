"""Signed notes and keys of the transparency log (Go's sumdb/note), tree heads and record texts.

A port of golang.org/x/mod/sumdb/note (Ed25519 keys, note signing and opening) and of the
text formats in golang.org/x/mod/sumdb/tlog/note.go (FormatTree, ParseTree, FormatRecord,
ParseRecord), byte-compatible with the Go checksum database and the original gobuild.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gobuild.tlog.merkle import HASH_SIZE, Tree, format_hash

ALG_ED25519 = 1  # the only key algorithm; first byte of the encoded key data

TREE_PREFIX = b"go.sum database tree\n"  # unchanged from Go's sumdb, clients expect it
SIG_PREFIX = "— "  # em dash U+2014 and a space start every signature line
MAX_SIGNATURES = 100  # Go refuses notes with more, to bound the work of opening one

_HEX8 = re.compile(r"[0-9a-fA-F]{8}")
_INT = re.compile(r"[+-]?[0-9]+")
_INT64_MAX = (1 << 63) - 1


class NoteError(Exception):
    """Base class of note and key failures."""


class KeyFormatError(NoteError, ValueError):
    """A signer or verifier key string that cannot be used."""


class MalformedNoteError(NoteError):
    """A note that does not follow the signed note format."""

    def __init__(self, message: str = "malformed note") -> None:
        super().__init__(message)


class UnverifiedNoteError(NoteError):
    """A well-formed note with no signature by any known key."""

    def __init__(self, note: Note) -> None:
        super().__init__("note has no verifiable signatures")
        self.note = note


class InvalidSignatureError(NoteError):
    """A signature by a known key that does not verify."""

    def __init__(self, name: str, key_hash: int) -> None:
        super().__init__(f"invalid signature for key {name}+{key_hash:08x}")
        self.name = name
        self.key_hash = key_hash


class AmbiguousVerifierError(NoteError):
    """Two known verifiers with the same name and key hash."""


class MalformedTreeError(NoteError):
    """Text that is not a tree head."""

    def __init__(self) -> None:
        super().__init__("malformed tree note")


class MalformedRecordError(NoteError):
    """Record text or a lookup response that is not in the record format."""

    def __init__(self) -> None:
        super().__init__("malformed record data")


def _is_go_space(c: str) -> bool:
    """Report whether Go's unicode.IsSpace holds for c (Python's isspace differs)."""
    return c in "\t\n\v\f\r\x85" or unicodedata.category(c) in ("Zs", "Zl", "Zp")


def is_valid_name(name: str) -> bool:
    """Report whether name can name a key: non-empty, no Unicode space, no '+'."""
    return name != "" and "+" not in name and not any(_is_go_space(c) for c in name)


def _b64decode(s: str) -> bytes:
    """Decode std base64 as Go does: padding required, CR and LF skipped."""
    try:
        return base64.b64decode(s.replace("\r", "").replace("\n", "").encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise ValueError("bad base64") from None


def _b64encode(b: bytes) -> str:
    """Encode std base64 with padding."""
    return base64.b64encode(b).decode("ascii")


def key_hash(name: str, key: bytes) -> int:
    """Return the key hash: big-endian first 4 bytes of SHA256(name + "\\n" + key)."""
    return int.from_bytes(hashlib.sha256(name.encode() + b"\n" + key).digest()[:4], "big")


def _chop(s: str, sep: str) -> tuple[str, str]:
    """Split s at the first sep; without sep, return (s, "")."""
    before, _, after = s.partition(sep)
    return before, after


def _parse_key_parts(name: str, hash16: str, key64: str) -> tuple[int, bytes]:
    """Check name and decode the hash and key data parts of an encoded key."""
    try:
        key = _b64decode(key64)
    except ValueError:
        key = b""
    if not _HEX8.fullmatch(hash16) or not is_valid_name(name) or not key:
        raise KeyFormatError("malformed verifier id")
    if key[0] != ALG_ED25519:
        raise KeyFormatError("unknown verifier algorithm")
    if len(key) != 1 + 32:
        raise KeyFormatError("malformed verifier id")
    return int(hash16, 16), key[1:]


@dataclass(frozen=True)
class Verifier:
    """A public key that checks signatures of one named server."""

    name: str
    key_hash: int
    public_key: bytes  # 32 raw Ed25519 bytes

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        """Parse a verifier key "<name>+<hash8hex>+<b64(0x01||pubkey)>"."""
        name, rest = _chop(vkey, "+")
        hash16, key64 = _chop(rest, "+")
        h, pub = _parse_key_parts(name, hash16, key64)
        if h != key_hash(name, bytes([ALG_ED25519]) + pub):
            raise KeyFormatError("invalid verifier hash")
        return cls(name, h, pub)

    def verify(self, msg: bytes, sig: bytes) -> bool:
        """Report whether sig is a valid signature of msg by this key."""
        if len(sig) != 64:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(sig, msg)
        except (InvalidSignature, ValueError):
            return False
        return True

    def __str__(self) -> str:
        return f"{self.name}+{self.key_hash:08x}+{_b64encode(bytes([ALG_ED25519]) + self.public_key)}"


@dataclass(frozen=True)
class Signer:
    """A private key that signs notes for one named server."""

    name: str
    key_hash: int
    seed: bytes = field(repr=False)  # 32-byte Ed25519 seed; secret

    @classmethod
    def parse(cls, skey: str) -> Signer:
        """Parse a signer key "PRIVATE+KEY+<name>+<hash8hex>+<b64(0x01||seed)>"."""
        priv1, rest = _chop(skey, "+")
        priv2, rest = _chop(rest, "+")
        name, rest = _chop(rest, "+")
        hash16, key64 = _chop(rest, "+")
        if priv1 != "PRIVATE" or priv2 != "KEY":
            raise KeyFormatError("malformed signer key")
        h, seed = _parse_key_parts(name, hash16, key64)
        signer = cls(name, h, seed)
        # The hash names the public key, so it can only be checked after deriving that.
        if h != key_hash(name, bytes([ALG_ED25519]) + signer.public_key):
            raise KeyFormatError("invalid signer hash")
        return signer

    @property
    def public_key(self) -> bytes:
        """Return the 32-byte Ed25519 public key."""
        pub = Ed25519PrivateKey.from_private_bytes(self.seed).public_key()
        return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def sign(self, msg: bytes) -> bytes:
        """Return the 64-byte Ed25519 signature of msg."""
        return Ed25519PrivateKey.from_private_bytes(self.seed).sign(msg)

    def verifier(self) -> Verifier:
        """Return the matching verifier."""
        return Verifier(self.name, self.key_hash, self.public_key)

    def __str__(self) -> str:
        return f"PRIVATE+KEY+{self.name}+{self.key_hash:08x}+{_b64encode(bytes([ALG_ED25519]) + self.seed)}"


def new_keys(name: str, seed: bytes) -> tuple[str, str]:
    """Return (signer key, verifier key) strings for name from a 32-byte Ed25519 seed."""
    if not is_valid_name(name):
        raise KeyFormatError(f"invalid key name {name!r}: must be non-empty, without spaces or '+'")
    if len(seed) != 32:
        raise KeyFormatError("an Ed25519 seed has 32 bytes")
    pub = Signer(name, 0, seed).public_key
    h = key_hash(name, bytes([ALG_ED25519]) + pub)
    return str(Signer(name, h, seed)), str(Verifier(name, h, pub))


def generate_key(name: str) -> tuple[str, str]:
    """Return a new random (signer key, verifier key) pair for name."""
    return new_keys(name, os.urandom(32))


@dataclass(frozen=True)
class Signature:
    """One signature line of a note."""

    name: str
    key_hash: int
    base64: str  # base64 of key hash (4 bytes BE) || signature


@dataclass
class Note:
    """A note text with its verified and unverified signatures."""

    text: str
    sigs: list[Signature] = field(default_factory=list)
    unverified_sigs: list[Signature] = field(default_factory=list)


def _verifier_map(verifiers: Iterable[Verifier]) -> dict[tuple[str, int], list[Verifier]]:
    """Index verifiers by (name, key hash)."""
    known: dict[tuple[str, int], list[Verifier]] = {}
    for v in verifiers:
        known.setdefault((v.name, v.key_hash), []).append(v)
    return known


def _check_note_chars(msg: bytes) -> str:
    """Return msg as text; raise unless it is UTF-8 without control characters but newline."""
    try:
        text = msg.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedNoteError() from None
    if any(c < " " and c != "\n" for c in text):
        raise MalformedNoteError()
    return text


def open_note(msg: bytes, verifiers: Iterable[Verifier]) -> Note:
    """Parse a signed note and verify its signatures; raise unless a known key signed it."""
    _check_note_chars(msg)
    split = msg.rfind(b"\n\n")
    if split < 0:
        raise MalformedNoteError()
    text, sigs = msg[: split + 1], msg[split + 2 :]
    if not sigs or not sigs.endswith(b"\n"):
        raise MalformedNoteError()

    known = _verifier_map(verifiers)
    note = Note(text.decode("utf-8"))
    seen: set[tuple[str, int]] = set()
    seen_unverified: set[str] = set()
    lines = sigs.decode("utf-8").split("\n")[:-1]
    if len(lines) > MAX_SIGNATURES:
        raise MalformedNoteError()
    for line in lines:
        if not line.startswith(SIG_PREFIX):
            raise MalformedNoteError()
        line = line[len(SIG_PREFIX) :]
        name, b64 = _chop(line, " ")
        try:
            sig = _b64decode(b64)
        except ValueError:
            raise MalformedNoteError() from None
        if not is_valid_name(name) or b64 == "" or len(sig) < 5:
            raise MalformedNoteError()
        h = int.from_bytes(sig[:4], "big")
        candidates = known.get((name, h))
        if candidates is None:
            # Signatures by unknown keys are kept, not trusted; repeats are dropped.
            if line not in seen_unverified:
                seen_unverified.add(line)
                note.unverified_sigs.append(Signature(name, h, b64))
            continue
        if len(candidates) > 1:
            raise AmbiguousVerifierError(f"ambiguous key {name}+{h:08x}")
        if (name, h) in seen:
            continue  # only the first signature by a key counts, as in Go
        seen.add((name, h))
        if not candidates[0].verify(text, sig[4:]):
            raise InvalidSignatureError(name, h)
        note.sigs.append(Signature(name, h, b64))
    if not note.sigs:
        raise UnverifiedNoteError(note)
    return note


def sign(note: Note | str | bytes, *signers: Signer) -> bytes:
    """Return the signed note: text, blank line, kept old signatures, then new ones."""
    if not isinstance(note, Note):
        note = Note(note.decode("utf-8") if isinstance(note, bytes) else note)
    if not note.text.endswith("\n"):
        raise MalformedNoteError()
    text = note.text.encode("utf-8")
    new_lines = []
    have = set()
    for s in signers:
        if not is_valid_name(s.name):
            raise NoteError("invalid signer")
        have.add((s.name, s.key_hash))
        sig = s.key_hash.to_bytes(4, "big") + s.sign(text)
        new_lines.append(f"{SIG_PREFIX}{s.name} {_b64encode(sig)}\n")
    out = [note.text, "\n"]
    for old in note.sigs + note.unverified_sigs:
        if not is_valid_name(old.name):
            raise MalformedNoteError()
        if (old.name, old.key_hash) in have:
            continue  # replaced by the new signature with the same key
        try:
            raw = _b64decode(old.base64)
        except ValueError:
            raise MalformedNoteError() from None
        if len(raw) < 4 or int.from_bytes(raw[:4], "big") != old.key_hash:
            raise MalformedNoteError()
        out.append(f"{SIG_PREFIX}{old.name} {old.base64}\n")
    out.extend(new_lines)
    return "".join(out).encode("utf-8")


def format_tree(tree: Tree) -> bytes:
    """Return the tree head text "go.sum database tree\\n<N>\\n<b64 hash>\\n"."""
    return TREE_PREFIX + f"{tree.n}\n{format_hash(tree.hash)}\n".encode()


def parse_tree(text: bytes) -> Tree:
    """Parse a tree head text; extra lines after the third are ignored (as Go)."""
    if not text.startswith(TREE_PREFIX) or text.count(b"\n") < 3 or len(text) > 1_000_000:
        raise MalformedTreeError()
    lines = text.split(b"\n", 3)
    n_text = lines[1].decode("ascii", "replace")
    if not _INT.fullmatch(n_text) or str(int(n_text)) != n_text or not 0 <= int(n_text) <= _INT64_MAX:
        raise MalformedTreeError()
    try:
        h = _b64decode(lines[2].decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        raise MalformedTreeError() from None
    if len(h) != HASH_SIZE:
        raise MalformedTreeError()
    return Tree(int(n_text), h)


def is_valid_record_text(text: bytes) -> bool:
    """Report whether text is record text: UTF-8, no controls but newline, ends in one, no blank line."""
    try:
        s = text.decode("utf-8")
    except UnicodeDecodeError:
        return False
    if not s.endswith("\n") or "\n\n" in s:
        return False
    return not any(c < " " and c != "\n" for c in s)


def format_record(record_id: int, text: bytes) -> bytes:
    """Return "<id>\\n<text>\\n", the record part of a lookup response and of data tiles."""
    if not is_valid_record_text(text):
        raise MalformedRecordError()
    return f"{record_id}\n".encode() + text + b"\n"


def parse_record(msg: bytes) -> tuple[int, bytes, bytes]:
    """Parse "<id>\\n<text>\\n" at the start of msg; return id, text and the rest (a note)."""
    i = msg.find(b"\n")
    if i < 0:
        raise MalformedRecordError()
    id_text = msg[:i].decode("ascii", "replace")
    # Go's ParseInt accepts a sign and leading zeros, but nothing else; and only int64.
    if not _INT.fullmatch(id_text) or not -_INT64_MAX - 1 <= int(id_text) <= _INT64_MAX:
        raise MalformedRecordError()
    rest = msg[i + 1 :]
    j = rest.find(b"\n\n")
    if j < 0:
        raise MalformedRecordError()
    text, rest = rest[: j + 1], rest[j + 2 :]
    if not is_valid_record_text(text):
        raise MalformedRecordError()
    return int(id_text), text, rest
