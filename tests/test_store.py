"""The store: blobs, results, failures; what is cached in memory and what must not be."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pytest

from gobuild.spec import BuildSpec
from gobuild.store import Failure, Result, Store

SPEC = BuildSpec("example.com/hello", "v1.0.0", "/", "linux", "amd64", "go1.26.8")


def result(store: Store) -> Result:
    blob = store.put_blob(b"binary")
    return Result(str(SPEC), "0N7e6zxGtHCObqNBDA_mXKv7-A9M", 6, 6, blob, blob, blob, "2026-01-01T00:00:00Z", 0)


def test_blobs_are_content_addressed_and_gzip_is_deterministic(tmp_path: Path) -> None:
    store = Store(tmp_path)
    name, size = store.put_blob_file(io.BytesIO(b"x" * 3_000_000))
    assert size == 3_000_000 and store.blob_path(name).read_bytes() == b"x" * 3_000_000
    gz1, _ = store.put_blob_gzip(io.BytesIO(b"y" * 1000))
    gz2, _ = store.put_blob_gzip(io.BytesIO(b"y" * 1000))
    assert gz1 == gz2 and gzip.decompress(store.blob_path(gz1).read_bytes()) == b"y" * 1000
    assert list(store.tmp.iterdir()) == []  # no temp file left behind
    # Everything stored is public, and nginx (another user) sends blobs straight from disk.
    assert {store.blob_path(n).stat().st_mode & 0o777 for n in (name, gz1)} == {0o644}
    with pytest.raises(ValueError):
        store.blob_path("../../etc/passwd")


def test_a_result_must_point_at_stored_blobs(tmp_path: Path) -> None:
    store = Store(tmp_path)
    bad = Result(str(SPEC), "0N7e6zxGtHCObqNBDA_mXKv7-A9M", 6, 6, "a" * 64, "a" * 64, "a" * 64, "now")
    with pytest.raises(FileNotFoundError):
        store.put_result(bad)
    assert store.result(SPEC) is None


def test_results_published_elsewhere_are_seen_at_once(tmp_path: Path) -> None:
    ours, other_process = Store(tmp_path), Store(tmp_path)
    assert ours.result(SPEC) is None and ours.result_hint(SPEC) is None
    other_process.put_result(result(other_process))
    assert ours.result_hint(SPEC) is None  # a check mark may lag a few seconds
    assert ours.result_hint(SPEC, max_age=0) is not None
    third = Store(tmp_path)
    assert third.result_hint(SPEC) is not None


def test_serving_never_trusts_a_remembered_miss(tmp_path: Path) -> None:
    ours, other_process = Store(tmp_path), Store(tmp_path)
    assert ours.result_hint(SPEC) is None
    other_process.put_result(result(other_process))
    assert ours.result(SPEC) is not None


def test_results_published_here_show_at_once_everywhere(tmp_path: Path) -> None:
    store = Store(tmp_path)
    assert store.result_hint(SPEC) is None
    store.put_result(result(store))
    assert store.result_hint(SPEC) is not None


def test_publishing_a_result_drops_the_failure(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.put_failure(Failure(str(SPEC), "cgo", "build failed (cgo)", store.put_blob(b"log"), "now"))
    assert store.failure(SPEC) is not None
    store.put_result(result(store))
    assert store.failure(SPEC) is None and not store.delete_failure(SPEC)
