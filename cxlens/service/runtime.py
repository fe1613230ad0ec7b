"""The state one app instance owns: its spool, the key cache and the background loader.

Everything that touches the workspace goes through `Runtime.workspace()` or `Runtime.run()`,
which open the file, let their caller work and close it again: DuckDB allows one writing process
per file, so the service never keeps it open between requests and loads, and the CLI can use it
meanwhile. Who may use it when is `Access`'s business.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from cxlens.errors import CxlensError, WorkspaceError
from cxlens.service import keys as keystore
from cxlens.service.loader import GaveWay, LoadReport, flush, refresh_kept
from cxlens.service.loadworker import PageReaders, read_workspace
from cxlens.service.settings import ServiceSettings
from cxlens.service.spool import Spool
from cxlens.workspace import Workspace
from cxlens.workspace.workspace import file_stamp

log = logging.getLogger("cxlens.service")

PRUNE_EVERY_SECONDS = 600.0
"""How often the loader forgets event_ids older than `seen_days` (the first turn prunes too)."""

T = TypeVar("T")

IDLE_WAIT_SECONDS = 0.05
"""How often background work (the dashboard's refresh) checks whether the workspace is free."""

GIVE_WAY_SECONDS = 15.0
"""How long loads keep giving way to readers' pages computed beside them (see loader.load_batch)
before one runs to its end, pausing between its steps for readers meanwhile."""

MISS_REFRESH_SECONDS = 1.0
"""At most one key reload per second is triggered by unknown keys, so guessing keys cannot keep
the workspace busy."""


EXCLUSIVE, LOAD, READ, BACKGROUND = "exclusive", "load", "read", "background"
"""How a caller uses the workspace (see Access)."""


class Access:
    """Who uses the workspace now: one caller alone, or a reader beside a load or background work.

    A caller in the server's process (keys, survey answers, admin changes) opens the file itself
    and so needs it to itself (EXCLUSIVE). A LOAD, a READ (a dashboard page or a read API call) and
    BACKGROUND work (the dashboard's refresh, which only reads) all run in the loader's child, where
    they share one DuckDB database instance: a reader reads committed data while a load writes
    (DuckDB's MVCC; the load is one transaction, and it gives way to a page, or pauses, and commits
    only after the read: see loader.load_batch), so a reader never waits for a load, which takes
    seconds, nor for a background view (up to 3 s; one a page waits beside is stopped:
    views.build_views). Background work runs alone otherwise, so it never slows a load. One load
    or one background batch, and one reader, at a time."""

    _COMPATIBLE: dict[str, frozenset[str]] = {EXCLUSIVE: frozenset(), LOAD: frozenset({READ}),
                                              READ: frozenset({LOAD, BACKGROUND}), BACKGROUND: frozenset({READ})}

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._held: dict[str, int] = {EXCLUSIVE: 0, LOAD: 0, READ: 0, BACKGROUND: 0}

    def _free(self, mode: str) -> bool:
        return all(n == 0 or held in self._COMPATIBLE[mode] for held, n in self._held.items())

    def acquire(self, mode: str, timeout: float = -1) -> bool:
        """Wait until `mode` is compatible with every holder (up to `timeout` s, forever when negative)."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._free(mode), None if timeout < 0 else timeout):
                return False
            self._held[mode] += 1
            return True

    def release(self, mode: str) -> None:
        with self._cond:
            self._held[mode] -= 1
            self._cond.notify_all()

    def held(self, mode: str) -> int:
        return self._held[mode]


class Runtime:
    """Spool, key cache, workspace access and the loader thread of one app."""

    def __init__(self, settings: ServiceSettings):
        self.settings = settings
        self.spool = Spool(settings.spool)
        self.access = Access()
        self._keys: dict[str, keystore.KeyRecord] = {}
        self._keys_at = 0.0
        self._miss_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_load: LoadReport | None = None
        self.last_error: str | None = None
        self._worker: Any = None
        self._urgent = 0
        self._readers = 0
        self._pages = 0
        """Urgent reads (pages someone waits for) waiting or in progress: background work does not
        start beside one (it would be stopped at once, its start-up cost taken from the page)."""
        self._urgent_lock = threading.Lock()
        self._pages_done = threading.Condition(self._urgent_lock)
        self.writes = 0
        """How many callers of `workspace()` changed the file (survey answers, admin changes): the
        dashboard's surveys page counts on it to show an answer at once."""

    @contextmanager
    def workspace(self, wait: float = -1) -> Iterator[Workspace]:
        """The workspace, opened for this caller only (others in this process wait up to `wait`
        seconds, forever when negative; then WorkspaceError)."""
        if not self._acquire(EXCLUSIVE, wait):
            raise WorkspaceError(f"The workspace {self.settings.workspace} is busy loading events; try again in a few seconds.")
        try:
            before = file_stamp(self.settings.workspace)
            ws = Workspace.open(self.settings.workspace)
            try:
                yield ws
            finally:
                ws.close()
                if file_stamp(self.settings.workspace) != before:
                    self.writes += 1
        finally:
            self.access.release(EXCLUSIVE)

    def _acquire(self, mode: str, timeout: float = -1, urgent: bool = True) -> bool:
        """Take the workspace in `mode` as a caller someone waits for: background work (the
        dashboard's refresh, in the loader's child) sees the wait and starts no further view until
        it is served; an `urgent` READ (someone waiting for a dashboard page to be computed) also
        stops the view it is computing (see views.build_views). Only those do: the loader's key
        refresh every turn, or an API client polling, would otherwise stop every long view before it ends."""
        reader = mode == READ and urgent
        with self._urgent_lock:
            self._urgent += 1
            self._readers += reader
            self._signal()
        try:
            return self.access.acquire(mode, timeout)
        finally:
            with self._urgent_lock:
                self._urgent -= 1
                self._readers -= reader
                self._signal()

    def _signal(self) -> None:
        if self._worker is not None:
            self._worker.someone_waits(self._urgent > 0, self._readers > 0)

    def read(self, fn: Callable[..., T], *args: Any, urgent: bool = False) -> T:
        """`fn(ws, *args)` on the workspace, as a READ: beside a load in progress, so a read never
        waits seconds for one, in the loader's child when there is one. `fn` must pickle (a module's
        function) and so must its arguments and result. `urgent` (a dashboard page someone waits
        for) also stops a background view and makes a load give way, as pages do; the read API's
        calls are not, so a script polling it cannot hold loads back. Either way no load commits
        while the read runs (loadworker.computing): its queries all see the same data."""
        return self.run(read_workspace, str(self.settings.workspace), fn, args, urgent, reader=True, urgent=urgent)

    def run(self, fn: Callable[..., T], *args: Any, background: bool = False,
            cancel: threading.Event | None = None, reader: bool = False, urgent: bool = True) -> T:
        """`fn(*args)` (fn opens the workspace) once `Access` allows it, in the loader's child process
        when there is one, so its Python work never holds the GIL the requests need.

        `background` work (the dashboard's refresh; it only reads) starts only when no load or
        caller in the server's process has the workspace, no foreground caller of `run` is
        waiting for it and no page is being computed (one started beside a page would be stopped
        at once, its start-up paid by the page); it gives up with WorkspaceError once `cancel` is
        set. A `reader` (fn only reads: a page or a read API call) runs alongside a load or
        background work (see Access); `urgent` readers (someone waits for a page) make either stop
        for them."""
        mode = BACKGROUND if background else READ if reader else EXCLUSIVE
        if background:
            while True:
                if (cancel is not None and cancel.is_set()) or self._stop.is_set():
                    raise WorkspaceError("The service is stopping.")
                if self._quiet() and self.access.acquire(BACKGROUND, IDLE_WAIT_SECONDS):
                    if self._quiet():
                        break
                    self.access.release(BACKGROUND)
                time.sleep(IDLE_WAIT_SECONDS)
            return self._call(BACKGROUND, fn, args)
        with self._page(reader and urgent):
            self._acquire(mode, urgent=urgent)
            return self._call(mode, fn, args)

    @contextmanager
    def _page(self, page: bool) -> Iterator[None]:
        """Counts an urgent read (a page someone waits for) while it waits and runs (`_pages`)."""
        if not page:
            yield
            return
        with self._urgent_lock:
            self._pages += 1
        try:
            yield
        finally:
            with self._urgent_lock:
                self._pages -= 1
                self._pages_done.notify_all()

    def _quiet(self) -> bool:
        """Whether background work may start: nobody waits for the workspace, no page is computed."""
        return self._urgent == 0 and self._pages == 0

    def _call(self, mode: str, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        """`fn(*args)` where it runs (see `run`), then `mode` released."""
        try:
            if self._worker is not None:
                return self._worker.call(fn, *args)
            return fn(*args)
        finally:
            self.access.release(mode)

    def refresh_keys(self, wait: float = -1) -> None:
        with self.workspace(wait) as ws:
            self._keys = keystore.active_keys(ws)
        self._keys_at = time.monotonic()

    def key(self, key_hash: str) -> keystore.KeyRecord | None:
        """The active key with this hash; an unknown hash reloads the keys (at most once a second,
        waiting at most a second for a running load) so a key created meanwhile works at once."""
        record = self._keys.get(key_hash)
        now = time.monotonic()
        if record is None and now - self._miss_at > MISS_REFRESH_SECONDS:
            self._miss_at = now
            try:
                self.refresh_keys(wait=1.0)
            except WorkspaceError:
                return None
            record = self._keys.get(key_hash)
        return record

    def _pause_after(self, report: LoadReport) -> float:
        """Seconds the workspace stays free after a load: the load interval, or longer after a long
        load (`load_pause` times its duration), so a high backlog makes loads larger, not more frequent."""
        return max(self.settings.load_interval, self.settings.load_pause * report.seconds)

    def _loop(self) -> None:
        """Load everything pending at start-up, then one batch per pause (see `_pause_after`); keys every turn."""
        first, next_load, next_prune, profiles_at = True, 0.0, 0.0, time.monotonic()
        gave_way = 0.0  # when the pending load first gave way to a reader (0: it has not)
        turn = max(0.1, min(self.settings.key_ttl, self.settings.load_interval))
        while not self._stop.is_set():
            try:
                backlog = self.spool.quick_backlog()  # also corrects the back-pressure estimate
                if first or (backlog and time.monotonic() >= next_load):
                    profiles = first or time.monotonic() - profiles_at >= self.settings.profiles_every
                    # A load gives way to a reader's page computed beside it, for GIVE_WAY_SECONDS
                    # at most, so a stream of readers cannot hold the events back for long; after
                    # that it only pauses between its steps while a page is being computed. Within
                    # that time it does not start while a page is computed: it would give way at
                    # once, its start (reading the spool, opening the workspace) paid by the page.
                    if not first and self._pages:
                        gave_way = gave_way or time.monotonic()
                        with self._pages_done:
                            self._pages_done.wait_for(lambda: self._pages == 0,
                                                      max(0.0, gave_way + GIVE_WAY_SECONDS - time.monotonic()))
                    held_back = time.monotonic() - gave_way if gave_way else 0.0
                    give_way = not first and held_back <= GIVE_WAY_SECONDS
                    self._acquire(LOAD)
                    try:
                        self.last_load = self._flush(batch=self.settings.load_batch, max_batches=None if first else 1,
                                                     threads=self.settings.load_threads, profiles=profiles,
                                                     readers=PageReaders(),
                                                     give_way=give_way)
                        gave_way = 0.0
                    except GaveWay:
                        gave_way = gave_way or time.monotonic()
                        log.info("a load gave way to a dashboard reader; loaded again once the reader is served")
                    finally:
                        self.access.release(LOAD)
                    if gave_way:  # loaded again once the reader's page is done (above)
                        continue
                    next_load = time.monotonic() + self._pause_after(self.last_load)
                    if self.last_load.batches and (profiles or self.last_load.backlog == 0):
                        profiles_at = time.monotonic()
                    if self.last_load.batches:
                        log.info("loaded %d events (%d duplicates, %d quarantined) in %.2f s",
                                 self.last_load.loaded, self.last_load.duplicates, self.last_load.quarantined,
                                 self.last_load.seconds)
                if first:
                    mode = self.run(refresh_kept, str(self.settings.workspace))
                    if mode not in ("current", "skipped"):
                        log.info("kept sessions brought up to date (%s)", mode)
                if time.monotonic() >= next_prune:
                    forgotten = self.spool.prune(time.time() - self.settings.seen_days * 86_400)
                    next_prune = time.monotonic() + min(PRUNE_EVERY_SECONDS, self.settings.seen_days * 86_400 / 4)
                    if forgotten:
                        log.info("forgot %d event_ids first seen over %g days ago", forgotten, self.settings.seen_days)
                self.refresh_keys()
                self.last_error = None
                first = False
            except CxlensError as exc:  # a busy workspace: the events wait in the spool
                self.last_error = str(exc)
                log.warning("load postponed: %s", exc)
            except Exception as exc:  # the loader must outlive one bad turn
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("load failed; the events stay in the spool")
            self._stop.wait(turn)

    def _flush(self, **kwargs: Any) -> LoadReport:
        """One flush, in the loader's child process when there is one (see cxlens.service.loadworker)."""
        if self._worker is not None:
            return self._worker.flush(self.settings.workspace, **kwargs)
        return flush(self.settings.workspace, self.spool, **kwargs)

    def start(self) -> None:
        self.refresh_keys()
        if self.settings.load_process:
            from cxlens.service.loadworker import LoadWorker

            self._worker = LoadWorker(self.settings.spool)
        self._thread = threading.Thread(target=self._loop, name="cxlens-loader", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the loader after its current turn and load what is left (graceful shutdown)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        try:
            self.access.acquire(EXCLUSIVE)
            try:
                flush(self.settings.workspace, self.spool, batch=self.settings.load_batch)
            finally:
                self.access.release(EXCLUSIVE)
        except CxlensError as exc:
            log.warning("events left in the spool at shutdown (loaded at the next start): %s", exc)
        if self._worker is not None:
            self._worker.close()
        self.spool.close()
