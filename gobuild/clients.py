"""Who is asking: the client address behind trusted reverse proxies, and clients known to misbehave."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .config import ConfigError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(cidrs: Iterable[str], key: str) -> tuple[Network, ...]:
    """CIDRs (or single addresses) from the config; ConfigError names the key."""
    try:
        return tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cidrs if c.strip())
    except ValueError as e:
        raise ConfigError(f"config: {key}: {e}") from e


def _address(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_address(remote: str, forwarded_for: Sequence[str], trusted: Sequence[Network]) -> Address | None:
    """The client: the socket peer, unless it is a trusted proxy; then X-Forwarded-For walked from the
    right, skipping trusted hops, to the first untrusted address (or the last parseable one)."""
    peer = _address(remote)
    if peer is None or not any(peer in net for net in trusted):
        return peer
    hops = [h for value in forwarded_for for h in value.split(",")]
    found = peer
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break
        found = address
        if not any(address in net for net in trusted):
            break
    return found


@dataclass(frozen=True)
class BadClient:
    """A client to refuse: its address in one of networks and, if given, a User-Agent substring."""

    networks: tuple[Network, ...]
    user_agent: str = ""

    def matches(self, address: Address | None, user_agent: str) -> bool:
        if address is None or not any(address in net for net in self.networks):
            return False
        return not self.user_agent or self.user_agent.lower() in user_agent.lower()


def parse_bad_clients(entries: Iterable[Mapping[str, str]]) -> tuple[BadClient, ...]:
    """bad_clients entries {"networks": "cidr,cidr", "user_agent": "..."}: networks are required,
    as in the original a User-Agent alone (trivially changed) never identifies a client."""
    out = []
    for entry in entries:
        if set(entry) - {"networks", "user_agent"} or not entry.get("networks", "").strip():
            raise ConfigError(f"config: bad_clients entries are {{\"networks\": \"cidr,...\", \"user_agent\": "
                              f"\"substring\"}} with networks, got {dict(entry)}")
        out.append(BadClient(parse_networks(entry["networks"].split(","), "bad_clients"),
                             entry.get("user_agent", "")))
    return tuple(out)


def module_allowed(prefixes: Sequence[str], module: str) -> bool:
    """Whether module lies under one of the path prefixes (all modules when there are none)."""
    return not prefixes or any(module == p.rstrip("/") or module.startswith(p.rstrip("/") + "/")
                               for p in prefixes)
