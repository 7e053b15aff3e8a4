"""`gobuild verify`: check a downloaded binary against its proof file, offline; online also the log's history."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import get as getmod
from .proof import Checked, ProofFileError, check, check_binary, read_file
from .tlog import client as tlogclient
from .tlog import note

EXIT_FAILED = 1  # the binary, proof or tree head does not verify
EXIT_USAGE = 2
EXIT_SECURITY = 3  # the log contradicts the proof's tree head: proof of a forked or rewritten log


class VerifyError(Exception):
    """A failed verification, one line for the user; exit_code says what kind."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Options:
    """The flags of `gobuild verify`."""

    verifierkey: str | None = None
    proof: str | None = None  # default: <binary>.proof
    url: str | None = None
    online: bool = False


def run(opts: Options, binary: str) -> str:
    """Verify binary; return the line to print on success, raise VerifyError otherwise."""
    try:
        verifier, url = getmod.resolve_key_and_url(
            getmod.Options(verifierkey=opts.verifierkey, url=opts.url), getmod.config_dir())
    except getmod.GetError as e:
        raise VerifyError(str(e), EXIT_USAGE) from None
    proof_path = Path(opts.proof or binary + ".proof")
    try:
        proof = read_file(proof_path)
        checked = check(proof, verifier)
        with open(binary, "rb") as f:
            check_binary(checked.record, f)
    except ProofFileError as e:
        raise VerifyError(f"{proof_path}: {e}") from None
    except OSError as e:
        raise VerifyError(f"reading {binary}: {e.strerror or e}", EXIT_USAGE) from None
    line = (f"ok: {binary} is {checked.record.spec} with sum {checked.record.sum}, record {proof.number} "
            f"in the log of {checked.log_name} (signed tree of {checked.tree.n} records)")
    if opts.online:
        line += "\n" + _check_online(checked, proof.signed_head, url, verifier)
    return line


def _check_online(checked: Checked, signed_head: bytes, url: str, verifier: note.Verifier) -> str:
    """Check that the log at url still holds the proof's tree head (state shared with `gobuild get`)."""
    try:
        client = tlogclient.Client(url, str(verifier), getmod.state_dir(checked.log_name))
        tree, _ = client.refresh()
        client.merge_head(signed_head)
    except tlogclient.SecurityError as e:
        raise VerifyError(str(e), EXIT_SECURITY) from None
    except tlogclient.ClientError as e:
        raise VerifyError(f"checking the log at {url}: {e}") from None
    return f"ok: the log at {url} (now {tree.n} records) is consistent with the proof's tree head"
