"""Build requests per client network over several windows (REFERENCE 14), with the `limits` library.

A client address counts against its network at four prefix lengths, in every window; builds for
old Go versions have their own, stricter numbers. The storage is in memory (the original's too);
`limits` can move it to a shared store later without changing this module's callers.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .config import ConfigError

if TYPE_CHECKING:  # imported by the first build start a client makes: ~3 MiB a serving-only process never needs
    from limits import RateLimitItem
    from limits.strategies import FixedWindowRateLimiter

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Limits:
    """Allowed builds: recent[w][p] in window w for the network at prefix p (old: old Go versions)."""

    windows: tuple[int, ...] = (60, 600, 3600, 21600)
    ipv4_prefixes: tuple[int, ...] = (32, 24, 20, 16)
    ipv6_prefixes: tuple[int, ...] = (64, 48, 32, 24)
    recent: tuple[tuple[int, ...], ...] = ((10, 20, 80, 160), (20, 40, 160, 320), (30, 60, 240, 480),
                                           (40, 80, 400, 800))
    old: tuple[tuple[int, ...], ...] = ((2, 3, 4, 5), (4, 6, 8, 10), (6, 9, 12, 15), (10, 15, 20, 25))


def parse_limits(value: bool | dict[str, Any]) -> Limits | None:
    """The rate_limits config value: True (defaults), False (None: no limits) or an object of overrides."""
    if value is False:
        return None
    if value is True:
        return Limits()
    known = set(Limits.__dataclass_fields__)
    if unknown := set(value) - known:
        raise ConfigError(f"config: rate_limits: unknown keys {sorted(unknown)} (known: {sorted(known)})")
    try:
        fields = {k: _ints(v) for k, v in value.items()}
        limits = Limits(**fields)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"config: rate_limits: {e}") from e
    prefixes = len(limits.ipv4_prefixes)
    for table in (limits.recent, limits.old):
        if len(table) != len(limits.windows) or any(len(row) != prefixes for row in table):
            raise ConfigError("config: rate_limits: recent and old need one row per window, one number per prefix")
    if len(limits.ipv6_prefixes) != prefixes or not all(0 < p <= 32 for p in limits.ipv4_prefixes) \
            or not all(0 < p <= 128 for p in limits.ipv6_prefixes) or not all(w > 0 for w in limits.windows):
        raise ConfigError("config: rate_limits: prefixes must fit their address family, as many for IPv6 as IPv4, "
                          "windows positive")
    return limits


def _ints(value: Any) -> Any:
    """A JSON list of ints (or of lists of ints) as tuples; ValueError otherwise."""
    if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        return tuple(value)
    if isinstance(value, list) and all(isinstance(v, list) for v in value):
        return tuple(_ints(v) for v in value)
    raise ValueError(f"expected a list of non-negative integers (or of such lists), got {value!r}")


class RateLimiter:
    """Counts build starts per network; hit() refuses with the seconds until the client may try again."""

    def __init__(self, limits: Limits | None) -> None:
        self._limiter: FixedWindowRateLimiter | None = None  # made by the first hit
        self._lock = threading.Lock()  # test-then-hit must not interleave
        self.configure(limits)

    def configure(self, limits: Limits | None) -> None:
        """New numbers (a reload); counts so far stay."""
        with self._lock:
            self.limits = limits

    def hit(self, address: Address, recent: bool) -> float | None:
        """Count one build start of address; None if allowed, else seconds to wait (nothing counted)."""
        with self._lock:
            if self.limits is None:
                return None
            limiter = self._limiter = self._limiter or _new_limiter()
            checks = list(self._checks(self.limits, address, recent))
            refused = [limiter.get_window_stats(item, *ids).reset_time
                       for item, ids in checks if not limiter.test(item, *ids)]
            if refused:
                return max(1.0, max(refused) - time.time())
            for item, ids in checks:
                limiter.hit(item, *ids)
            return None

    @staticmethod
    def _checks(limits: Limits, address: Address, recent: bool) -> list[tuple[RateLimitItem, tuple[str, ...]]]:
        from limits import RateLimitItemPerSecond

        prefixes = limits.ipv4_prefixes if address.version == 4 else limits.ipv6_prefixes
        table = limits.recent if recent else limits.old
        kind = "recent" if recent else "old"
        out: list[tuple[RateLimitItem, tuple[str, ...]]] = []
        for window, row in zip(limits.windows, table, strict=True):
            for prefix, amount in zip(prefixes, row, strict=True):
                network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
                out.append((RateLimitItemPerSecond(amount, window), (kind, str(network))))
        return out


def _new_limiter() -> FixedWindowRateLimiter:
    """Counters in this process' memory."""
    from limits.storage import MemoryStorage
    from limits.strategies import FixedWindowRateLimiter

    return FixedWindowRateLimiter(MemoryStorage())
