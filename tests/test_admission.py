"""Rate limits, client addresses, bad clients and the allowlist as units; the config keys they read."""

from __future__ import annotations

import ipaddress
import json
import logging
import sys
from pathlib import Path

import pytest

from gobuild import config as configmod
from gobuild.clients import BadClient, client_address, module_allowed, parse_bad_clients, parse_networks
from gobuild.logs import JSONFormatter
from gobuild.ratelimit import Limits, RateLimiter, parse_limits

A = ipaddress.ip_address("192.0.2.1")


def test_defaults_are_the_originals_and_old_go_is_stricter() -> None:
    limiter = RateLimiter(parse_limits(True))
    assert [limiter.hit(A, recent=False) for _ in range(2)] == [None, None]
    wait = limiter.hit(A, recent=False)
    assert wait is not None and 0 < wait <= 60
    assert all(limiter.hit(A, recent=True) is None for _ in range(10))  # recent Go counts apart
    assert limiter.hit(A, recent=True) is not None
    # The /24 allows 20 a minute: a neighbour still builds, ten more neighbours do not all.
    neighbours = [ipaddress.ip_address(f"192.0.2.{n}") for n in range(2, 14)]
    assert sum(limiter.hit(n, recent=True) is None for n in neighbours) == 10


def test_ipv6_counts_by_network() -> None:
    limiter = RateLimiter(Limits(windows=(60,), recent=((1, 5, 5, 5),), old=((1, 1, 1, 1),)))
    assert limiter.hit(ipaddress.ip_address("2001:db8::1"), True) is None
    assert limiter.hit(ipaddress.ip_address("2001:db8::2"), True) is not None  # the same /64
    assert limiter.hit(ipaddress.ip_address("2001:db8:0:1::1"), True) is None


def test_limits_off_and_object_form_and_errors() -> None:
    assert parse_limits(False) is None
    assert RateLimiter(None).hit(A, True) is None
    custom = parse_limits({"windows": [10], "recent": [[1, 2, 3, 4]], "old": [[0, 0, 0, 0]]})
    assert custom is not None and custom.windows == (10,) and custom.recent == ((1, 2, 3, 4),)
    limiter = RateLimiter(custom)
    assert limiter.hit(A, recent=True) is None and limiter.hit(A, recent=True) is not None
    assert limiter.hit(A, recent=False) is not None  # 0: no old Go at all
    for bad in ({"windows": [10]}, {"recnt": []}, {"ipv4_prefixes": [33, 24, 20, 16]}, {"windows": ["1m"]}):
        with pytest.raises(configmod.ConfigError, match="rate_limits"):
            parse_limits(bad)


def test_client_address_trusts_only_configured_proxies() -> None:
    trusted = parse_networks(["127.0.0.1/32", "10.0.0.0/8"], "trusted_proxies")
    assert str(client_address("203.0.113.9", ["192.0.2.1"], trusted)) == "203.0.113.9"  # not a proxy: ignored
    assert str(client_address("127.0.0.1", ["192.0.2.1, 10.1.2.3"], trusted)) == "192.0.2.1"
    assert str(client_address("127.0.0.1", ["198.51.100.1, 192.0.2.1"], trusted)) == "192.0.2.1"  # rightmost
    assert str(client_address("127.0.0.1", [], trusted)) == "127.0.0.1"
    assert str(client_address("127.0.0.1", ["garbage, 10.0.0.1"], trusted)) == "10.0.0.1"
    assert str(client_address("::ffff:192.0.2.7", [], ())) == "192.0.2.7"
    assert client_address("", [], trusted) is None
    with pytest.raises(configmod.ConfigError, match="trusted_proxies"):
        parse_networks(["10.0.0.0/33"], "trusted_proxies")


def test_bad_clients_need_networks_and_match_all_parts() -> None:
    (bad,) = parse_bad_clients([{"networks": "192.0.2.0/24", "user_agent": "Crawler"}])
    assert bad.matches(A, "Mozilla/5.0 (compatible; SomeCRAWLER/1.0)")
    assert not bad.matches(A, "curl/8.0")
    assert not bad.matches(ipaddress.ip_address("198.51.100.1"), "crawler")
    assert BadClient(parse_networks(["192.0.2.0/24"], "x")).matches(A, "anything")
    with pytest.raises(configmod.ConfigError, match="bad_clients"):
        parse_bad_clients([{"user_agent": "crawler"}])


def test_module_allowlist_matches_whole_path_elements() -> None:
    prefixes = ("example.com/team", "corp.example/")
    assert module_allowed(prefixes, "example.com/team")
    assert module_allowed(prefixes, "example.com/team/tool/v2")
    assert module_allowed(prefixes, "corp.example/x")
    assert not module_allowed(prefixes, "example.com/teamwork")
    assert not module_allowed(prefixes, "example.com/hello")
    assert module_allowed((), "anything.example/x")


@pytest.mark.parametrize(("key", "value", "message"), [
    ("admin_listen", "127.0.0.1:8000", "admin_listen"),  # the public listen
    ("admin_listen", "nohost", "admin_listen"),
    ("log_format", "xml", "log_format"),
    ("binary_cache_max_mb", -1, "binary_cache_max_mb"),
    ("rate_limits", "yes", "rate_limits"),
    ("module_prefixes", ["/"], "module_prefixes"),
])
def test_bad_operating_config_is_one_line(tmp_path: Path, key: str, value: object, message: str) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({key: value, "goproxy": "http://127.0.0.1:1"}))
    with pytest.raises(configmod.ConfigError, match=message):
        configmod.load(str(path))


def test_rate_limits_accepts_true_false_and_an_object(tmp_path: Path) -> None:
    for value in (True, False, {"windows": [60], "recent": [[1, 2, 3, 4]], "old": [[1, 1, 1, 1]]}):
        path = tmp_path / "c.json"
        path.write_text(json.dumps({"rate_limits": value, "goproxy": "http://127.0.0.1:1", "admin_listen": ""}))
        assert configmod.load(str(path)).rate_limits == value


def test_json_log_lines_are_one_object_each() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("gobuild.x", logging.ERROR, "f", 1, "build %s failed\nbadly", ("a",),
                                   sys.exc_info())
    line = JSONFormatter().format(record)
    assert "\n" not in line
    obj = json.loads(line)
    assert obj["level"] == "error" and obj["message"] == "build a failed\nbadly" and "boom" in obj["exception"]
