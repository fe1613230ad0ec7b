"""Stopping the work of one connection from another thread, for someone more urgent.

A background batch of dashboard views stops for a reader who waits for the workspace, and a
spool load gives way to a reader's page being computed beside it. Checking between steps left
the reader waiting for the step in progress (up to 3.5 s for the journeys page on the demo); a
query is interrupted at once, and long Python loops check `cxlens.stopping.checkpoint()`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

from cxlens.stopping import stoppable


class Stopper:
    """While `urgent()` holds, interrupts the connection's running query every POLL seconds
    (DuckDB's `interrupt`, made for another thread) until the work ends; `fired` tells the work
    it was stopped. Work stopped this way is dropped whatever it caught (a swallowed error could
    leave it incomplete) and done again later; Python code between queries runs on until the
    next query, which then stops at once, or until the next `cxlens.stopping.checkpoint()` in
    long Python loops (the CLV fits), which raises `Stopped` in the thread that entered the
    stopper once it fired."""

    POLL = 0.02

    def __init__(self, backend: Any, urgent: Callable[[], bool] | None):
        self.fired = False
        self._raw = getattr(backend, "raw", None)
        self._urgent = urgent
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._stoppable = stoppable(lambda: self.fired)

    def __enter__(self) -> Stopper:
        if self._urgent is not None and self._raw is not None:
            self._stoppable.__enter__()
            self._thread = threading.Thread(target=self._watch, name="cxlens-stopper", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
            self._stoppable.__exit__(None, None, None)

    def _watch(self) -> None:
        assert self._urgent is not None
        while not self._done.wait(self.POLL):
            if self.fired or self._urgent():
                self.fired = True
                with contextlib.suppress(Exception):
                    self._raw.interrupt()
