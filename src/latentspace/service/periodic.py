"""A background thread that does one thing every few seconds until it is stopped."""

from __future__ import annotations

import logging
import threading

__all__ = ["Periodic"]

logger = logging.getLogger(__name__)


class Periodic:
    """Calls :meth:`tick` every ``interval`` seconds on a daemon thread (first at once, or
    after one interval); a tick that raises is logged, and the next one runs on time.

    Args:
        interval: seconds between ticks.
        name: the thread's name.
        failure: what the log says when a tick fails.
        at_once: tick as soon as the thread starts.
    """

    def __init__(self, interval: float, *, name: str, failure: str, at_once: bool) -> None:
        self._interval = interval
        self._name = name
        self._failure = failure
        self._at_once = at_once
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> None:
        """The work of one round."""
        raise NotImplementedError

    def start(self) -> None:
        """Start the thread (once)."""
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the round in progress, and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None

    def _run(self) -> None:
        if not self._at_once and self._stop.wait(self._interval):
            return
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # a failed round must not end the thread; the next one retries
                logger.exception("%s", self._failure)
            self._stop.wait(self._interval)
