"""When a kept result page is stale: a cheap snapshot of what its render reads besides the URL.

A result page names newer module versions and Go toolchains and marks which related builds exist,
so it changes while its URL does not. The fast path keeps it (fastpath.keep_while) while nothing it
was rendered from has changed: the log's size (a build logged by any process on this data dir),
results learnt by this process (store.generation), the module's list in the versions cache (the
same fetch, still within its TTL), the Go versions installed and listed and their ports
(toolchains.stamp; none while a refresh of the list is due, so a page view still starts it) and the
targets' popularity order. A kept page looks up "not built" afresh and lives at most PAGE_TTL, the
age a remembered "not built" may have on any page: a build published elsewhere shows no later than
before.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..spec import BuildSpec
from ..store import NEGATIVE_TTL
from . import fastpath
from .current import services

if TYPE_CHECKING:
    from ..services import Services

PAGE_TTL = NEGATIVE_TTL


def _state(s: Services, spec: BuildSpec) -> tuple[object, ...]:
    return (s.tlog.size(), s.store.generation, s.versions.stamp(spec.module), s.toolchains.stamp(),
            s.targets.generation)


def keep_result_page(environ: dict[str, Any], spec: BuildSpec) -> float:
    """Let the fast path keep spec's result page while it is current; the hint age to render it with."""
    s = services()  # the check runs outside Flask's app context
    before = _state(s, spec)
    if None in before:  # a list to fetch first: the page rendered now is not one to keep
        return NEGATIVE_TTL
    until = time.monotonic() + PAGE_TTL

    def current() -> bool:
        return time.monotonic() < until and _state(s, spec) == before

    return 0.0 if fastpath.keep_while(environ, current) else NEGATIVE_TTL
