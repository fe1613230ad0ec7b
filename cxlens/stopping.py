"""Stopping long Python work, at points the work chooses, for someone more urgent.

A DuckDB query is stopped from another thread by its connection's `interrupt`, but Python work
between queries runs on. Where an analysis loops in Python for long (the CLV models' likelihood
fits: 0.3-0.5 s of L-BFGS on the demo workspace, during which a dashboard view the service had
asked to stop kept sharing the GIL with the page it was stopped for), it calls `checkpoint()`,
which raises `Stopped` when the work running in this thread has been asked to stop (`stoppable`,
set by service.stopper.Stopper). Raised only there: an exception sent into a thread from outside
(CPython's PyThreadState_SetAsyncExc) can land in a library's cleanup code, such as Ibis's
`__del__` that keeps its equality cache consistent, and corrupt it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_local = threading.local()


class Stopped(BaseException):
    """The work was asked to stop (see `checkpoint`). A BaseException, so an analysis's own
    `except Exception` (a model that fails and is reported as failed) does not take it for a failure
    and carry on."""


@contextmanager
def stoppable(stop: Callable[[], bool]) -> Iterator[None]:
    """Within this block, `checkpoint()` in this thread raises Stopped once `stop()` holds."""
    previous = getattr(_local, "stop", None)
    _local.stop = stop
    try:
        yield
    finally:
        _local.stop = previous


def checkpoint() -> None:
    """Raise Stopped if the work in this thread has been asked to stop; otherwise nothing (cheap:
    call it once per iteration of a long loop)."""
    stop = getattr(_local, "stop", None)
    if stop is not None and stop():
        raise Stopped()
