"""Signals of a serving process: SIGTERM and SIGINT stop it cleanly, SIGHUP reloads its config.

A clean stop: the listeners close, builds already running may finish for shutdown_timeout
seconds, then the rest are killed with their process groups. A killed build ends as a temporary
failure (nothing stored); the candidate/append protocol of the builder keeps the store and the
log consistent whenever the process stops.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

from . import gocmd
from .builds import Coordinator
from .config import ConfigError

log = logging.getLogger(__name__)

KILLED_GRACE = 10.0  # seconds for killed builds to notice and end


def install(reload: Callable[[], None] | None) -> None:
    """Make SIGTERM/SIGINT end the serve loop and SIGHUP call reload (when there is a config file)."""

    def stop(signum: int, frame: FrameType | None) -> None:
        log.info("%s: stopping", signal.Signals(signum).name)
        raise SystemExit(0)

    def hangup(signum: int, frame: FrameType | None) -> None:
        if reload is None:
            log.warning("SIGHUP: no config file to reload")
            return
        # Off the signal handler: reading files and taking locks there could deadlock the main thread.
        threading.Thread(target=_reload, args=(reload,), name="reload", daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, hangup)


def _reload(reload: Callable[[], None]) -> None:
    try:
        reload()
    except ConfigError as e:
        log.error("SIGHUP: %s (keeping the old settings)", e)


def finish_builds(coordinator: Coordinator, timeout: float) -> None:
    """Let running builds end within timeout, then kill what still runs."""
    running = len(coordinator.jobs())
    if running:
        log.info("waiting up to %gs for %d build(s)", timeout, running)
    if coordinator.shutdown(timeout):
        log.info("stopped")
        return
    log.warning("killing %d build(s) still running after %gs", len(coordinator.jobs()), timeout)
    gocmd.stop_all()
    if not coordinator.shutdown(KILLED_GRACE, compiling_only=True):
        log.error("builds did not end after being killed: exiting anyway")
