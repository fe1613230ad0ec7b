"""The loader's own process: spooled events are loaded into the workspace by a child process.

A load is mostly engine work, but identity resolution and the profile rebuild also run Python
code, and in the server's process that code holds the GIL the request handlers need: requests
waited behind it (p99 ~290 ms on 2 cores). In a child process at lower CPU priority a load only
competes for a core, and the scheduler prefers the requests. The child opens the spool and the
workspace itself (SQLite and DuckDB files, safe across processes); the server still takes its
workspace lock around each load, so nothing else in the server opens the workspace meanwhile.
The dashboard computes its pages here too (`call`), for the same reason.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from cxlens.service.loader import LoadReport, flush
from cxlens.service.spool import Spool

T = TypeVar("T")

NICENESS = 10
"""How much lower the loader runs than request handling."""
WATCH_SECONDS = 0.5
"""How often the loader process checks that the server is still there."""

_spool: Spool | None = None
_waiting: Any = None
"""Set by the server while one of its callers waits for the workspace (see `someone_waits`)."""
_reading: Any = None
"""Set by the server while a reader (someone waiting for a dashboard page) waits for the workspace."""


def _start(spool_path: str, waiting: Any = None, reading: Any = None) -> None:
    global _spool, _waiting, _reading
    _waiting, _reading = waiting, reading
    try:
        os.nice(NICENESS)
    except (AttributeError, OSError):
        pass
    _spool = Spool(Path(spool_path))
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), name="cxlens-loader-watchdog", daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """End this process when the server is gone (a SIGKILLed server cannot stop it). A load cut
    short here is rolled back like any crash; its events are still in the spool."""
    while os.getppid() == parent:
        time.sleep(WATCH_SECONDS)
    os._exit(0)


def _flush(workspace: str, kwargs: dict[str, Any]) -> LoadReport:
    assert _spool is not None
    return flush(Path(workspace), _spool, **kwargs)


def someone_waiting() -> bool:
    """In the child: whether a caller in the server waits for the workspace (a background batch of
    dashboard views then starts no further view)."""
    return _waiting is not None and _waiting.is_set()


def reader_waiting() -> bool:
    """In the child: whether a reader in the server waits for the workspace (a background view
    being computed is then stopped and computed again later)."""
    return _reading is not None and _reading.is_set()


def _ready() -> int:
    return os.getpid()


class LoadWorker:
    """One child process that runs `loader.flush` calls (and the dashboard's page computations), one at a time."""

    def __init__(self, spool_path: Path):
        context = multiprocessing.get_context("spawn")
        self._waiting, self._reading = context.Event(), context.Event()
        self._pool = ProcessPoolExecutor(1, mp_context=context, initializer=_start,
                                         initargs=(str(spool_path), self._waiting, self._reading))
        self.pid = self._pool.submit(_ready).result()  # pay the child's start-up (imports) now

    def flush(self, workspace: Path, **kwargs: Any) -> LoadReport:
        return self._pool.submit(_flush, str(workspace), kwargs).result()

    def someone_waits(self, waiting: bool, reading: bool = False) -> None:
        """Tell the child whether a caller, and whether a reader, waits for the workspace (cheap:
        shared flags)."""
        for flag, on in ((self._waiting, waiting), (self._reading, reading)):
            if on:
                flag.set()
            else:
                flag.clear()

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in the child (a module-level function; arguments and result are pickled)."""
        return self._pool.submit(fn, *args).result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
