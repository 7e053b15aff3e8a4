"""The GOOS/GOARCH targets we build for, their popularity order, and guessing one from a User-Agent.

Which targets a Go version supports comes from that toolchain (`go tool dist list -json`, see
parse_dist_list and Toolchains.targets_for); DEFAULT_TARGETS only seeds what URLs may name.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Iterable

Target = tuple[str, str]

# The original's fixed list (REFERENCE 5.1), alphabetical: the tie-break order for popularity.
DEFAULT_TARGETS: tuple[Target, ...] = tuple(
    tuple(t.split("/"))  # type: ignore[misc]
    for t in [
        "aix/ppc64", "android/386", "android/amd64", "android/arm", "android/arm64", "darwin/386",
        "darwin/amd64", "darwin/arm64", "dragonfly/amd64", "freebsd/386", "freebsd/amd64", "freebsd/arm",
        "freebsd/arm64", "freebsd/riscv64", "illumos/amd64", "ios/amd64", "ios/arm64", "js/wasm", "linux/386",
        "linux/amd64", "linux/arm", "linux/arm64", "linux/loong64", "linux/mips", "linux/mips64",
        "linux/mips64le", "linux/mipsle", "linux/ppc64", "linux/ppc64le", "linux/riscv64", "linux/s390x",
        "netbsd/386", "netbsd/amd64", "netbsd/arm", "netbsd/arm64", "openbsd/386", "openbsd/amd64",
        "openbsd/arm", "openbsd/arm64", "openbsd/ppc64", "openbsd/riscv64", "plan9/386", "plan9/amd64",
        "plan9/arm", "solaris/amd64", "windows/386", "windows/amd64", "windows/arm", "windows/arm64"
    ]
)

# Without any history, start with what most people run rather than aix/ppc64 (REFERENCE 18.13).
_SEED_POPULARITY = {("linux", "amd64"): 3, ("windows", "amd64"): 2, ("darwin", "arm64"): 2, ("linux", "arm64"): 1}

_OS_ALIASES = {"darwin": ("darwin", "macos", "macintosh", "mac os x"), "ios": ("iphone", "ipad", "ipod")}
_ARCH_ALIASES = {
    "amd64": ("amd64", "x86_64", "x86-64", "x64; ", "win64", "wow64"),
    "386": ("386", "i686", "x86; ", "win32"),
    "arm64": ("arm64", "aarch64", "armv8"),
    "arm": ("armv7", "armv6", "armhf"),
}
# Phones name no architecture; nearly all of them are 64-bit ARM. Their User-Agents also say Linux or Mac OS X.
_OS_DEFAULT_ARCH = {"android": "arm64", "ios": "arm64"}


class DistListError(ValueError):
    """Output of `go tool dist list -json` that is not a list of ports."""


def parse_dist_list(data: str | bytes) -> tuple[list[Target], frozenset[Target]]:
    """The targets in `go tool dist list -json [-broken]` output and the broken ones among them.

    Order: first-class ports, the others, then broken ones, each group in go's order. A port
    marked broken still builds with `go install` (the original offers it), so it is a target.
    """
    try:
        ports = json.loads(data)
    except ValueError as e:
        raise DistListError(f"go tool dist list -json: not JSON: {e}") from None
    if not isinstance(ports, list):
        raise DistListError("go tool dist list -json: not a list")
    first: list[Target] = []
    rest: list[Target] = []
    broken: list[Target] = []
    for port in ports:
        target = _port_target(port)
        (broken if port.get("Broken") else first if port.get("FirstClass") else rest).append(target)
    return first + rest + broken, frozenset(broken)


_WORD = re.compile(r"[a-z0-9]+")


def _port_target(port: object) -> Target:
    """GOOS and GOARCH of one dist list entry; they end up in URLs and file names, so [a-z0-9]+ only."""
    if isinstance(port, dict):
        goos, goarch = port.get("GOOS"), port.get("GOARCH")
        if isinstance(goos, str) and isinstance(goarch, str) and _WORD.fullmatch(goos) and _WORD.fullmatch(goarch):
            return goos, goarch
    raise DistListError(f"go tool dist list -json: bad entry {port!r:.100}")


class Targets:
    """The set of buildable targets, ordered by how often they were built."""

    def __init__(self, targets: Iterable[Target] = DEFAULT_TARGETS) -> None:
        self._base = tuple(targets)
        self._known = frozenset(self._base)
        self._counts: Counter[Target] = Counter(_SEED_POPULARITY)
        self.generation = 0  # grows whenever the list or its order may change
        self._lock = threading.Lock()

    def __contains__(self, target: object) -> bool:
        return target in self._known

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._base)

    def __len__(self) -> int:
        return len(self._base)

    def learn(self, targets: Iterable[Target]) -> None:
        """Accept targets a toolchain reported (new ports appear in newer Go) in URLs from now on."""
        with self._lock:
            new = sorted(set(targets) - self._known)
            if new:
                self._base = tuple(sorted(self._base + tuple(new)))
                self._known = frozenset(self._base)
                self.generation += 1

    def count(self, target: Target) -> None:
        """Note one more build of target."""
        with self._lock:
            self._counts[target] += 1
            self.generation += 1

    def by_popularity(self) -> list[Target]:
        """All targets, most built first; ties keep the alphabetical order."""
        with self._lock:
            counts = dict(self._counts)
        return sorted(self._base, key=lambda t: -counts.get(t, 0))

    def guess(self, user_agent: str) -> Target:
        """The target a User-Agent most likely runs, else the most popular one.

        The most specific system named wins (an Android phone's User-Agent also says Linux),
        then an architecture it names, else that system's usual one; ties go by popularity.
        """
        ua = user_agent.lower()
        ordered = self.by_popularity()
        best, best_score = ordered[0], (0, 0)
        for goos, goarch in ordered:
            named = any(a in ua for a in _OS_ALIASES.get(goos, (goos,)))
            os_score = (2 if goos in _OS_DEFAULT_ARCH else 1) if named else 0
            if any(a in ua for a in _ARCH_ALIASES.get(goarch, (goarch,))):
                arch = 2
            else:
                arch = 1 if named and _OS_DEFAULT_ARCH.get(goos) == goarch else 0
            if (os_score, arch) > best_score:
                best, best_score = (goos, goarch), (os_score, arch)
        return best
