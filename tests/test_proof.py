"""Offline proofs against the real server: `proof` under each result URL and `gobuild verify`."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from gobuild.cli import main
from gobuild.proof import Proof, ProofFileError, check
from gobuild.spec import Record, sum_of
from gobuild.tlog import merkle, note
from tests.conftest import GOVERSION
from tests.modproxy import ModuleProxy, hello_module
from tests.realserver import real_server


@dataclass(frozen=True)
class Instance:
    base: str
    verifier_key: str
    signer_key: str


@pytest.fixture(scope="module")
def proxy() -> Iterator[ModuleProxy]:
    with ModuleProxy() as p:
        p.add("example.com/hello", "v1.0.0", hello_module("example.com/hello", "v1.0.0"))
        p.add("example.com/hello", "v1.1.0", hello_module("example.com/hello", "v1.1.0", "hi"))
        yield p


@pytest.fixture(scope="module")
def instance(proxy: ModuleProxy, tmp_path_factory: pytest.TempPathFactory, server_cache: Path) -> Iterator[Instance]:
    """A real server whose key pair is made like the original's `gobuild genkey` makes it."""
    tmp = tmp_path_factory.mktemp("proof-a")
    skey, vkey = note.generate_key("proofs.example")
    (tmp / "signer.key").write_text(skey + "\n")
    with real_server(tmp, proxy.url, cache_dir=str(server_cache), signer_key_file=str(tmp / "signer.key")) as base:
        yield Instance(base, vkey, skey)


def download(base: str, version: str, dest: Path) -> tuple[Path, requests.Response]:
    """Download hello@version for linux/amd64 and its proof beside it (as a browser would save them)."""
    name = f"hello-{version}-{GOVERSION}"
    r = requests.get(f"{base}/example.com/hello@{version}/linux-amd64-{GOVERSION}/{name}", timeout=300)
    assert r.status_code == 200, r.text
    dest.mkdir(parents=True, exist_ok=True)
    (dest / name).write_bytes(r.content)
    p = requests.get(r.url.rsplit("/", 1)[0] + "/proof", timeout=30)
    assert p.status_code == 200, p.text
    assert p.headers["Content-Disposition"] == f'attachment; filename="{name}.proof"'
    (dest / (name + ".proof")).write_bytes(p.content)
    return dest / name, p


@pytest.fixture(scope="module")
def files(instance: Instance, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two builds (records 0 and 1) with their proofs."""
    d = tmp_path_factory.mktemp("downloads")
    return {v: download(instance.base, v, d / v)[0] for v in ("v1.0.0", "v1.1.0")}


def verify(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["verify", *args])
    out, err = capsys.readouterr()
    return code, out, err


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_proof_verifies_offline_with_the_original_key_format(
        instance: Instance, files: dict[str, Path], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    original = (Path(__file__).parent / "testdata/tlog/gobuild-instance/verifier.key").read_text().strip()
    for key in (original, instance.verifier_key):
        assert re.fullmatch(r"[a-z.-]+\+[0-9a-f]{8}\+A[A-Za-z0-9+/]{43}", key)

    def no_network(*args: object) -> None:
        raise AssertionError("verify must not use the network")
    monkeypatch.setattr(socket.socket, "connect", no_network)
    for version, binary in files.items():
        code, out, err = verify(capsys, "-verifierkey", instance.verifier_key, str(binary))
        assert code == 0, err
        spec = f"example.com/hello@{version}/linux-amd64-{GOVERSION}/"
        assert out.startswith(f"ok: {binary} is {spec} with sum {sum_of(binary.read_bytes())}")
        assert "in the log of proofs.example" in out
    # The key can also come from the config file, like `gobuild get`'s.
    conf = Path.home() / ".config" / "gobuild"
    conf.mkdir(parents=True)
    (conf / "verifierkey").write_text(instance.verifier_key + "\n")
    assert verify(capsys, str(files["v1.1.0"]))[0] == 0


def test_the_proof_file_is_immutable_and_in_the_documented_format(instance: Instance, files: dict[str, Path],
                                                                   tmp_path: Path) -> None:
    binary = files["v1.1.0"]
    text = Path(str(binary) + ".proof").read_bytes()
    proof = Proof.parse(text)
    assert text.startswith(b"gobuild proof v1\nrecord 1\nexample.com/hello v1.1.0 / linux amd64 ")
    assert proof.record == Record.parse(proof.record).pack() and len(proof.inclusion) == 1
    assert b"\ninclusion 1\n" in text and note.parse_tree(proof.signed_head).n == 2
    # More builds later do not change it: it proves against the smallest tree holding the record.
    requests.get(f"{instance.base}/example.com/hello@v1.0.0/linux-amd64-{GOVERSION}-stripped/"
                 f"hello-v1.0.0-{GOVERSION}-stripped", timeout=300).raise_for_status()
    _, resp = download(instance.base, "v1.1.0", tmp_path)
    assert resp.content == text and resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    page = requests.get(resp.url.rsplit("/", 1)[0] + "/", timeout=30).text
    assert f"gobuild verify -verifierkey {instance.verifier_key} {binary.name}" in page
    assert '<a href="proof">' in page


@pytest.mark.parametrize("what, offset, message", [
    ("binary", 1000, "the binary does not match the record: its sum is"),
    ("record", 0, "the inclusion proof does not lead from record 1"),
    ("inclusion hash", 0, "the inclusion proof does not lead from record 1"),
    ("tree head hash", 5, "has a bad signature by proofs.example: the tree head was changed after signing"),
    ("tree head size", 0, "has a bad signature by proofs.example"),
])
def test_a_flipped_byte_fails_with_a_clear_message(instance: Instance, files: dict[str, Path], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str], what: str, offset: int,
                                                   message: str) -> None:
    src = files["v1.1.0"]
    binary = tmp_path / src.name
    binary.write_bytes(src.read_bytes())
    proof_file = tmp_path / (src.name + ".proof")
    text = Path(str(src) + ".proof").read_bytes()
    proof_file.write_bytes(text)
    lines = text.split(b"\n")
    starts = {"record": 2, "inclusion hash": 4, "tree head hash": 8, "tree head size": 7}
    if what == "binary":
        flip(binary, offset)
    else:
        line = starts[what]
        start = sum(len(x) + 1 for x in lines[:line])
        flip(proof_file, start + offset)
    code, out, err = verify(capsys, "-verifierkey", instance.verifier_key, str(binary))
    assert code == 1 and out == ""
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_proof_from_another_instance_fails(proxy: ModuleProxy, instance: Instance, files: dict[str, Path],
                                             tmp_path: Path, server_cache: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    with real_server(tmp_path, proxy.url, cache_dir=str(server_cache)) as other:
        theirs, _ = download(other, "v1.1.0", tmp_path / "other")
    # The same bytes (the build is reproducible), but the proof is signed by the other log's key.
    assert theirs.read_bytes() == files["v1.1.0"].read_bytes()
    code, _, err = verify(capsys, "-verifierkey", instance.verifier_key, str(theirs))
    assert code == 1
    assert "the proof's tree head is not signed by proofs.example+" in err
    assert "a proof from another gobuild instance, or the wrong key" in err


def test_usage_errors_exit_2(files: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = verify(capsys, str(files["v1.0.0"]))
    assert code == 2 and "no verifier key" in err
    code, _, err = verify(capsys, "-verifierkey", "garbage", str(files["v1.0.0"]))
    assert code == 2 and "bad verifier key" in err
    (tmp_path / "notaproof").write_text("hello\n")
    code, _, err = verify(capsys, "-verifierkey", note.generate_key("x.example")[1], "-proof",
                          str(tmp_path / "notaproof"), str(files["v1.0.0"]))
    assert code == 1 and "not a gobuild proof" in err


def test_online_check_accepts_the_log_and_catches_a_forked_head(instance: Instance, files: dict[str, Path],
                                                                 tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    url = instance.base + "/tlog"
    code, out, err = verify(capsys, "-verifierkey", instance.verifier_key, "-online", "-url", url,
                            str(files["v1.1.0"]))
    assert code == 0, err
    assert re.search(r"ok: the log at \S+ \(now \d+ records\) is consistent with the proof's tree head", out)
    # A head signed with the right key but for another history (a split view): fine offline,
    # refused online with the proof of misbehaviour.
    real0 = Proof.parse(Path(str(files["v1.0.0"]) + ".proof").read_bytes()).record
    fake_binary = tmp_path / "hello"
    fake_binary.write_bytes(b"not what the log holds\n")
    fake = Record(Record.parse(real0).spec.with_(version="v9.9.9"), fake_binary.stat().st_size,
                  sum_of(fake_binary.read_bytes())).pack()
    hashes = merkle.HashList()
    for n, text in enumerate((real0, fake)):
        hashes.hashes += merkle.stored_hashes(n, text, hashes)
    tree = merkle.Tree(2, merkle.tree_hash(2, hashes))
    head = note.sign(note.format_tree(tree), note.Signer.parse(instance.signer_key))
    forged = Proof(1, fake, tuple(merkle.prove_record(2, 1, hashes)), head)
    (tmp_path / "hello.proof").write_bytes(forged.pack())
    assert verify(capsys, "-verifierkey", instance.verifier_key, str(fake_binary))[0] == 0
    code, out, err = verify(capsys, "-verifierkey", instance.verifier_key, "-online", "-url", url, str(fake_binary))
    assert code == 3 and out == ""
    assert err.startswith("SECURITY ERROR\n") and "proof of misbehavior:" in err


def test_checks_a_tree_head_signed_by_the_original_gobuild() -> None:
    """A proof made from an original instance's lookup answer and level-0 tile, checked with its key."""
    data = Path(__file__).parent / "testdata" / "tlog" / "gobuild-instance"
    number, record, head = note.parse_record((data / "lookup-hello-v1.1.0-linux-amd64.txt").read_bytes())
    tile = (data / "tile-8-0-000.p.11").read_bytes()
    hashes = merkle.HashList()
    for n in range(len(tile) // 32):
        hashes.hashes += merkle.stored_hashes_for_record_hash(n, tile[n * 32:(n + 1) * 32], hashes)
    proof = Proof(number, record, tuple(merkle.prove_record(11, number, hashes)), head)
    key = note.Verifier.parse((data / "verifier.key").read_text().strip())
    checked = check(Proof.parse(proof.pack()), key)
    assert (checked.tree.n, checked.log_name) == (11, "gobuild-oracle")
    assert checked.record.sum == "0W2U1Dnzf_WcDIC_8StCKg9YU9Iw"
    with pytest.raises(ProofFileError, match="does not lead from record 1"):
        check(Proof(number, record.replace(b"2504463", b"2504464"), proof.inclusion, head), key)
