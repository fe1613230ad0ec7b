"""The loader's own process: spooled events are loaded into the workspace by a child process.

A load is mostly engine work, but identity resolution and the profile rebuild also run Python
code, and in the server's process that code holds the GIL the request handlers need: requests
waited behind it (p99 ~290 ms on 2 cores). In a child process at lower CPU priority a load only
competes for a core, and the scheduler prefers the requests. The child opens the spool and the
workspace itself (SQLite and DuckDB files, safe across processes); the server decides who may use
the workspace when (see runtime.Access). The dashboard computes its pages here too (`call`), for
the same reason.

Each call runs in a thread of its own in the child, so a page can be computed while a load runs:
both open the workspace in this one process, where DuckDB shares one database instance between
them, and the page reads committed data while the load writes (the load defers to the page: see
`PageReaders`). A pool of one worker process would run them one after the other, and a reader
would wait for the load.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import multiprocessing
import os
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from cxlens.errors import CxlensError, WorkspaceError
from cxlens.service.loader import LoadReport, flush
from cxlens.service.spool import Spool

T = TypeVar("T")

NICENESS = 10
"""How much lower the loader runs than request handling."""
WATCH_SECONDS = 0.5
"""How often the loader process checks that the server is still there."""

PAGE_MODULES: tuple[str, ...] = (
    "scipy.stats", "cxlens.journeys", "cxlens.report.journeys", "cxlens.report.value", "cxlens.report.attribution",
    "cxlens.report.experiments", "cxlens.stats", "cxlens.identity", "cxlens.ingest.loader", "cxlens.profiles",
    "cxlens.semantic.kept", "cxlens.semantic.templates",
)
"""What the child imports as it starts, before any call runs: the analyses behind the dashboard's
pages (scipy.stats alone is ~0.7 s) and the steps of a load. Otherwise the first journeys page
on a new server paid ~0.75 s of imports on top of its computation."""

_spool: Spool | None = None
_warmed = threading.Event()
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
    threading.Thread(target=_warm, name="cxlens-loader-warm", daemon=True).start()
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), name="cxlens-loader-watchdog", daemon=True).start()


def _warm() -> None:
    """Import PAGE_MODULES. Calls wait for this (`_answer`), so no two threads ever import at once
    (Python's import locks can fail a circular import made from two threads); an import that fails
    is left for the call that needs it to report in its own words."""
    try:
        for name in PAGE_MODULES:
            with contextlib.suppress(Exception):
                importlib.import_module(name)
    finally:
        _warmed.set()


def _exit_with_parent(parent: int) -> None:
    """End this process when the server is gone (a SIGKILLed server cannot stop it). A load cut
    short here is rolled back like any crash; its events are still in the spool."""
    while os.getppid() == parent:
        time.sleep(WATCH_SECONDS)
    os._exit(0)


def _serve(conn: Any, spool_path: str, waiting: Any, reading: Any) -> None:
    """The child's main loop: run each call it receives in a thread of its own, answer when done;
    on the end-of-work message (None) or a closed pipe, finish the calls in progress and exit."""
    _start(spool_path, waiting, reading)
    answer_lock = threading.Lock()
    running: list[threading.Thread] = []
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            break
        if message is None:
            break
        running = [t for t in running if t.is_alive()]
        thread = threading.Thread(target=_answer, args=(conn, answer_lock, *message), name="cxlens-loader-call", daemon=True)
        thread.start()
        running.append(thread)
    for thread in running:
        thread.join()


def _answer(conn: Any, lock: threading.Lock, call_id: int, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    try:
        if fn is not _ready:
            _warmed.wait()
        reply: tuple[int, bool, Any] = (call_id, True, fn(*args))
    except BaseException as exc:  # noqa: BLE001 - every failure goes back to the caller
        if not isinstance(exc, CxlensError):  # a bug: where it happened, for the server's log
            exc.add_note("In the loader's process:\n" + "".join(traceback.format_exception(exc)).rstrip())
        reply = (call_id, False, exc)
    with lock:
        try:
            conn.send(reply)
        except Exception as exc:  # noqa: BLE001 - a result or an error that does not pickle
            conn.send((call_id, False, RuntimeError(f"the loader's process could not send its answer back: {exc}")))


def _flush(workspace: str, kwargs: dict[str, Any]) -> LoadReport:
    assert _spool is not None
    report = flush(Path(workspace), _spool, **kwargs)
    if report.batches:
        from cxlens.service.dashboard.views import check_templates

        try:
            # The next reader's first page at this data version then need not; one computed now checks for itself.
            check_templates(workspace, stop=reader_computing)
        except Exception:  # noqa: BLE001 - the load is committed; a page that needs the checks makes them itself
            pass
    return report


def someone_waiting() -> bool:
    """In the child: whether a caller in the server waits for the workspace (a background batch of
    dashboard views then starts no further view)."""
    return _waiting is not None and _waiting.is_set()


def reader_waiting() -> bool:
    """In the child: whether a reader in the server waits for the workspace (a background view
    being computed is then stopped and computed again later)."""
    return _reading is not None and _reading.is_set()


_computing = 0
"""Readers' pages being computed in this process now (see `computing`)."""
_patient = 0
"""Other reads in progress in this process (the read API's: see `computing`)."""
_committing = False
"""Whether a load is committing now (see `quiet_commit`)."""
_gate = threading.Condition()
QUIET_COMMIT_SECONDS = 10.0
"""How long a load that has done its work waits for readers' pages to finish before it commits
anyway (a page takes well under that; see `quiet_commit`)."""


@contextlib.contextmanager
def computing(urgent: bool = True) -> Iterator[None]:
    """Marks a page a reader waits for as being computed in this process: a load running beside it
    gives way (see loader.load_batch) or waits with its commit (see `quiet_commit`); a page does
    not start while a load commits. A read that is not `urgent` (the read API: a script polling it
    should not hold every load back) only waits for a commit, and a load waits with its commit for it."""
    global _computing, _patient
    with _gate:
        _gate.wait_for(lambda: not _committing)
        if urgent:
            _computing += 1
        else:
            _patient += 1
    try:
        yield
    finally:
        with _gate:
            if urgent:
                _computing -= 1
            else:
                _patient -= 1
            _gate.notify_all()


@contextlib.contextmanager
def quiet_commit() -> Iterator[None]:
    """Held by a load around its commit: entered once no read is in progress (or after
    QUIET_COMMIT_SECONDS), and no read starts until it is left. A page reads many queries, each
    seeing the data as it is when the query starts; so no page sees part of its data before a
    load and part after (a read transaction would do the same, but DuckDB reads the temporary
    tables a page makes inside one about twice as slowly)."""
    global _committing
    with _gate:
        _gate.wait_for(lambda: _computing == 0 and _patient == 0, QUIET_COMMIT_SECONDS)
        _committing = True
    try:
        yield
    finally:
        with _gate:
            _committing = False
            _gate.notify_all()


def reader_computing() -> bool:
    """Whether a page a reader waits for is being computed in this process."""
    return _computing > 0


def read_workspace(workspace: str, fn: Callable[..., T], args: tuple[Any, ...], urgent: bool) -> T:
    """`fn(ws, *args)` on the workspace opened here, as a read (see `computing`): Runtime.read."""
    from cxlens.workspace import Workspace

    with computing(urgent), Workspace.open(Path(workspace)) as ws:
        return fn(ws, *args)


class PageReaders:
    """The readers' pages of this process, as a load defers to them (loader.Readers): they are
    counted by `computing`, wherever the load runs (this class pickles by reference to it)."""

    def computing(self) -> bool:
        return reader_computing()

    def wait(self) -> None:
        """Until no page is being computed, QUIET_COMMIT_SECONDS at most."""
        with _gate:
            _gate.wait_for(lambda: _computing == 0, QUIET_COMMIT_SECONDS)

    def quiet_commit(self) -> contextlib.AbstractContextManager[None]:
        return quiet_commit()


def _ready() -> int:
    return os.getpid()


class LoadWorker:
    """One child process that runs `loader.flush` calls and the dashboard's page computations, each
    in a thread of its own (see the module's docstring); started again if it dies."""

    def __init__(self, spool_path: Path):
        self._context = multiprocessing.get_context("spawn")
        self._spool_path = str(spool_path)
        self._waiting, self._reading = self._context.Event(), self._context.Event()
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._pending: dict[int, Future[Any]] = {}
        self._conn: Any = None
        self._process: Any = None
        self._start()
        self.pid: int = self.call(_ready)  # pay the child's start-up (imports) now

    def _start(self) -> None:
        ours, theirs = self._context.Pipe()
        process = self._context.Process(target=_serve, args=(theirs, self._spool_path, self._waiting, self._reading),
                                        name="cxlens-loader", daemon=True)
        process.start()
        theirs.close()
        self._conn, self._process = ours, process
        threading.Thread(target=self._receive, args=(ours, process), name="cxlens-loader-answers", daemon=True).start()

    def _receive(self, conn: Any, process: Any) -> None:
        """Hand each answer to its caller; when the child is gone, fail the calls it had."""
        while True:
            try:
                call_id, ok, value = conn.recv()
            except (EOFError, OSError):
                break
            with self._lock:
                future = self._pending.pop(call_id, None)
            if future is not None:
                (future.set_result if ok else future.set_exception)(value)
        process.join()
        with self._lock:
            lost = [f for f in self._pending.values()]
            self._pending.clear()
            if self._process is process:
                self._conn = self._process = None  # the next call starts a new child
        for future in lost:
            future.set_exception(WorkspaceError(
                f"The loader's process ended (exit code {process.exitcode}) before it answered; "
                "the events stay in the spool and are loaded by the next turn."))

    def flush(self, workspace: Path, **kwargs: Any) -> LoadReport:
        return self.call(_flush, str(workspace), kwargs)

    def someone_waits(self, waiting: bool, reading: bool = False) -> None:
        """Tell the child whether a caller, and whether a reader, waits for the workspace (cheap:
        shared flags)."""
        for flag, on in ((self._waiting, waiting), (self._reading, reading)):
            if on:
                flag.set()
            else:
                flag.clear()

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in the child, in a thread of its own (a module-level function; arguments and
        result are pickled)."""
        future: Future[T] = Future()
        with self._lock:
            if self._process is None:
                self._start()
            call_id = next(self._ids)
            self._pending[call_id] = future
            try:
                self._conn.send((call_id, fn, args))
            except BaseException:
                self._pending.pop(call_id, None)
                raise
        return future.result()

    def close(self) -> None:
        """Let the calls in progress finish, then end the child."""
        with self._lock:
            conn, process = self._conn, self._process
            if conn is not None:
                try:
                    conn.send(None)
                except OSError:
                    pass
        if process is not None:
            process.join()
