"""Tests for gobuild.sumdb: GOSUMDB parsing, finding the database through proxies, verified lookups."""

from __future__ import annotations

from pathlib import Path

import pytest

from gobuild import sumdb
from gobuild.sumdb import ChecksumMismatch, SumDBConfigError, SumDBUnavailable, VerificationFailed
from gobuild.tlog import note
from tests.modproxy import ModuleProxy
from tests.toolchainfake import FakeSumDB

MOD = "example.com/some/Module"  # upper case: lookups must use the !-escaped path
VERSION = "v1.2.3"
H1 = "h1:" + "B" * 43 + "="


@pytest.fixture
def db(tmp_path: Path) -> FakeSumDB:
    d = FakeSumDB(tmp_path / "log")
    d.add("example.com/other", "v0.1.0", "h1:" + "C" * 43 + "=")
    d.add(MOD, VERSION, H1)
    return d


# --- GOSUMDB values ---------------------------------------------------------------------------


def test_parse_off() -> None:
    assert sumdb.parse_gosumdb("off") is None


def test_parse_known_name_gets_the_built_in_key() -> None:
    name = sumdb.KNOWN_SUMDB_KEY.split("+")[0]
    assert sumdb.parse_gosumdb(name) == sumdb.SumDBSetting(sumdb.KNOWN_SUMDB_KEY)


def test_parse_key_and_url() -> None:
    _, vkey = note.generate_key("db.example/sub")
    setting = sumdb.parse_gosumdb(f"{vkey} http://127.0.0.1:9/db/")
    assert setting == sumdb.SumDBSetting(vkey, "http://127.0.0.1:9/db")
    assert setting.name == "db.example/sub"


@pytest.mark.parametrize("value,message", [
    ("", "missing"),
    ("a b c", "too many fields"),
    ("db.example", "invalid GOSUMDB"),  # a name we know no key for
    ("db.example+00000000+AAAA", "invalid GOSUMDB"),
])
def test_parse_refuses(value: str, message: str) -> None:
    with pytest.raises(SumDBConfigError, match=message):
        sumdb.parse_gosumdb(value)


def test_parse_refuses_bad_url_and_name() -> None:
    _, vkey = note.generate_key("db.example")
    with pytest.raises(SumDBConfigError, match="http or https"):
        sumdb.parse_gosumdb(f"{vkey} ftp://x")
    _, odd = note.generate_key("db..example/..")
    with pytest.raises(SumDBConfigError, match="host"):
        sumdb.parse_gosumdb(odd)


def test_configured_from_environment_last_wins() -> None:
    assert sumdb.configured_gosumdb(["GOSUMDB=first", "GOFLAGS=-x", "GOSUMDB=off"]) == "off"


def test_configured_default_without_go_is_the_known_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no go to ask
    assert sumdb.configured_gosumdb(["GOFLAGS=-x"]) == sumdb.KNOWN_SUMDB_KEY.split("+")[0]


# --- where the database is --------------------------------------------------------------------


def test_base_url_through_proxy_that_supports_it(modproxy: ModuleProxy, db: FakeSumDB, tmp_path: Path) -> None:
    db.publish(modproxy)
    assert db.client(modproxy, tmp_path).base_url() == f"{modproxy.url}/sumdb/{db.name}"


def test_base_url_explicit_skips_proxies(modproxy: ModuleProxy, db: FakeSumDB, tmp_path: Path) -> None:
    db.publish(modproxy)
    client = db.client(modproxy, tmp_path, url=f"{modproxy.url}/sumdb/{db.name}")
    client.check(MOD, VERSION, H1)
    assert not any(p.endswith("/supported") for p in modproxy.requests)


def test_base_url_direct_when_proxy_lacks_it(modproxy: ModuleProxy, db: FakeSumDB, tmp_path: Path) -> None:
    # ModuleProxy answers 404 under /sumdb/ unless told otherwise: go then asks https://<name>.
    assert db.client(modproxy, tmp_path).base_url() == f"https://{db.name}"


def test_base_url_proxy_failure_is_temporary(modproxy: ModuleProxy, db: FakeSumDB, tmp_path: Path) -> None:
    modproxy.fail("/sumdb/", 502)
    with pytest.raises(SumDBUnavailable) as e:
        db.client(modproxy, tmp_path).base_url()
    assert e.value.status == 503


def test_base_url_falls_through_like_go(db: FakeSumDB, tmp_path: Path) -> None:
    with ModuleProxy() as a, ModuleProxy() as b, ModuleProxy() as c:
        db.publish(c)
        a.fail("/sumdb/", 500)  # '|' after a: any error falls through
        # b answers 404: ',' falls through on not-found
        setting = sumdb.parse_gosumdb(db.vkey)
        assert setting is not None
        found = sumdb.SumDB(setting, f"{a.url}|{b.url},{c.url}", tmp_path, timeout=5).base_url()
        assert found == f"{c.url}/sumdb/{db.name}"
        with pytest.raises(SumDBUnavailable):
            sumdb.SumDB(setting, f"{a.url},{c.url}", tmp_path, timeout=5).base_url()


# --- verified lookups -------------------------------------------------------------------------


def test_check_accepts_the_logged_hash(modproxy: ModuleProxy, db: FakeSumDB, tmp_path: Path) -> None:
    db.publish(modproxy)
    client = db.client(modproxy, tmp_path)
    client.check(MOD, VERSION, H1)
    assert client.lookup(MOD, VERSION) == [f"{MOD} {VERSION} {H1}"]  # not the /go.mod line
    assert f"/sumdb/{db.name}/lookup/example.com/some/!module@v1.2.3" in modproxy.requests


def test_check_mismatch(modproxy: ModuleProxy, db: FakeSumDB, tmp_path: Path) -> None:
    db.publish(modproxy)
    with pytest.raises(ChecksumMismatch, match="checksum mismatch") as e:
        db.client(modproxy, tmp_path).check(MOD, VERSION, "h1:" + "D" * 43 + "=")
    assert e.value.status == 502 and H1 in str(e.value)


def test_check_unknown_version(modproxy: ModuleProxy, db: FakeSumDB, tmp_path: Path) -> None:
    db.publish(modproxy)
    with pytest.raises(VerificationFailed, match="not in checksum database"):
        db.client(modproxy, tmp_path).check(MOD, "v9.9.9", H1)


def test_tree_signed_by_another_key_refused(modproxy: ModuleProxy, db: FakeSumDB, tmp_path: Path) -> None:
    db.publish(modproxy)
    impostor = FakeSumDB(tmp_path / "impostor", name=db.name)
    impostor.add(MOD, VERSION, "h1:" + "E" * 43 + "=")
    impostor.publish(modproxy)  # same paths, different key
    with pytest.raises(VerificationFailed):
        db.client(modproxy, tmp_path / "state").check(MOD, VERSION, "h1:" + "E" * 43 + "=")


def test_record_not_in_tree_refused(modproxy: ModuleProxy, db: FakeSumDB, tmp_path: Path) -> None:
    db.publish(modproxy)
    key = "example.com/some/!module@v1.2.3"
    path = f"/sumdb/{db.name}/lookup/{key}"
    forged = db.log.lookup_response(db.keys[key]).replace(H1.encode(), b"h1:" + b"F" * 43 + b"=")
    modproxy.serve(path, forged)
    with pytest.raises(VerificationFailed, match="authenticate"):
        db.client(modproxy, tmp_path).check(MOD, VERSION, "h1:" + "F" * 43 + "=")


def test_database_outage_is_temporary(modproxy: ModuleProxy, db: FakeSumDB, tmp_path: Path) -> None:
    db.publish(modproxy)
    client = db.client(modproxy, tmp_path)
    client.base_url()
    modproxy.fail(f"/sumdb/{db.name}/lookup/", 503)
    with pytest.raises(SumDBUnavailable):
        client.check(MOD, VERSION, H1)
    modproxy.fail(f"/sumdb/{db.name}/lookup/", 0)
    client.check(MOD, VERSION, H1)  # nothing remembered: works once the database is back


def test_state_survives_and_detects_growth(modproxy: ModuleProxy, db: FakeSumDB, tmp_path: Path) -> None:
    db.publish(modproxy)
    db.client(modproxy, tmp_path).check(MOD, VERSION, H1)
    db.add("example.com/later", "v1.0.0", "h1:" + "G" * 43 + "=")
    db.publish(modproxy)
    # A new client with the same state dir proves the bigger tree consistent with the stored one.
    db.client(modproxy, tmp_path).check("example.com/later", "v1.0.0", "h1:" + "G" * 43 + "=")
