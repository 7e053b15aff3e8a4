"""What the build page shows of a build's phases: the list of steps and the elapsed time."""

from __future__ import annotations

import time

from flask import Blueprint

from ..phases import Phase
from .current import services

bp = Blueprint("steps", __name__)

# The steps in order, with what the page calls them; "queued" comes before the build's own phases.
STEPS = [("queued", "Queue"), (Phase.DOWNLOADING, "Download"), (Phase.COMPILING, "Compile"),
         (Phase.LINKING, "Link"), (Phase.HASHING, "Hash"), (Phase.VERIFYING, "Verifiers"), (Phase.LOGGING, "Log")]
_INDEX = {step: i for i, (step, _) in enumerate(STEPS)} | {"starting": 1, Phase.INSTALLING_GO: 1}


@bp.app_context_processor
def step_helpers() -> dict[str, object]:
    verifiers = services().verifier is not None
    steps = [(step, label) for step, label in STEPS if step != Phase.VERIFYING or verifiers]
    return {"phase_steps": steps, "phase_index": lambda step: _INDEX.get(step, 0), "elapsed": elapsed}


def elapsed(since: float, now: float | None = None) -> str:
    """Seconds since a Unix time as m:ss (h:mm:ss past an hour), as the page's script ticks it on."""
    seconds = max(0, int((time.time() if now is None else now) - since))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"
