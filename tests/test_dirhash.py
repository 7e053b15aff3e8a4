"""Tests for gobuild.dirhash: Go's h1: hash of module zips and directories.

Known answers were computed by the go command (go1.26.8): the zips below, made with
tests.modproxy.make_zip, were served from a file:// GOPROXY and `go mod download -json` printed
their "Sum" (dirhash.HashZip) and "GoModSum" (Hash1 over the single file "go.mod").
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from gobuild import dirhash
from tests.modproxy import make_zip

VECTORS = [
    (
        "example.com/dh", "v1.0.0",
        {"go.mod": b"module example.com/dh\n\ngo 1.22\n", "main.go": b"package main\n\nfunc main() {}\n",
         "sub/b.txt": b"\xff\x00binary\n", "LICENSE": b"x"},
        "h1:HuTuwweosVFpu1dYks+iuv/Z31Z3gG4UJqvGK5j42bc=",
        "h1:cGP7wxCyR5AVeODzIdT5ZmjR2nSeTxdtl5RGS7vvqaw=",
    ),
    (  # upper case sorts before lower case, non-ASCII names after ASCII (bytewise, as Go)
        "example.com/dh2", "v0.1.0",
        {"go.mod": b"module example.com/dh2\n", "Z.txt": b"upper\n", "a.txt": b"",
         "\u00e9t\u00e9.txt": "caf\u00e9\n".encode(), "dir/a-b.go": b"package dir\n"},
        "h1:jg2r3RTQEhs67cZc8MB4z8IFBDxBvMdC2zWtM08HHeA=",
        "h1:mM6p0BMpveoovxVkox1WV3RxHwmnxb7+MhrsDknnWv8=",
    ),
]


@pytest.mark.parametrize("path,version,files,want,_", VECTORS)
def test_hash_zip_matches_go(path: str, version: str, files: dict[str, bytes], want: str, _: str) -> None:
    assert dirhash.hash_zip(io.BytesIO(make_zip(path, version, files))) == want


@pytest.mark.parametrize("path,version,files,want,_", VECTORS)
def test_hash_zip_from_file(
    tmp_path: Path, path: str, version: str, files: dict[str, bytes], want: str, _: str
) -> None:
    z = tmp_path / "m.zip"
    z.write_bytes(make_zip(path, version, files))
    assert dirhash.hash_zip(z) == want


@pytest.mark.parametrize("path,version,files,_,want", VECTORS)
def test_go_mod_hash_matches_go(path: str, version: str, files: dict[str, bytes], _: str, want: str) -> None:
    assert dirhash.hash1(["go.mod"], lambda name: io.BytesIO(files[name])) == want


@pytest.mark.parametrize("path,version,files,want,_", VECTORS)
def test_hash_dir_equals_hash_zip(tmp_path: Path, path: str, version: str, files: dict[str, bytes], want: str,
                                  _: str) -> None:
    for name, content in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(content)
    assert dirhash.hash_dir(tmp_path, f"{path}@{version}") == want


def test_entry_order_in_zip_does_not_matter() -> None:
    path, version, files, want, _ = VECTORS[0]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name in sorted(files, reverse=True):
            z.writestr(f"{path}@{version}/{name}", files[name])
    assert dirhash.hash_zip(io.BytesIO(buf.getvalue())) == want


def test_one_changed_byte_changes_the_hash() -> None:
    path, version, files, want, _ = VECTORS[0]
    changed = dict(files, **{"main.go": files["main.go"].replace(b"main()", b"main( )")})
    assert dirhash.hash_zip(io.BytesIO(make_zip(path, version, changed))) != want


def test_renamed_file_changes_the_hash() -> None:
    path, version, files, want, _ = VECTORS[0]
    renamed = {("LICENSE.txt" if k == "LICENSE" else k): v for k, v in files.items()}
    assert dirhash.hash_zip(io.BytesIO(make_zip(path, version, renamed))) != want


def test_newline_in_name_refused() -> None:
    with pytest.raises(dirhash.DirHashError, match="newline"):
        dirhash.hash1(["a\nb"], lambda name: io.BytesIO(b""))


def test_not_a_zip_refused() -> None:
    with pytest.raises(dirhash.DirHashError):
        dirhash.hash_zip(io.BytesIO(b"not a zip at all"))


def test_empty_file_list() -> None:
    # sha256 of the empty summary, as Go's Hash1 gives for no files.
    assert dirhash.hash1([], lambda name: io.BytesIO(b"")) == "h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
