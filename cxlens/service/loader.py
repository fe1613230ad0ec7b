"""Moving spooled events into the workspace: open, ingest one batch, close, trim the spool.

Each batch goes through the ordinary file ingest (one DuckDB transaction, identities resolved, the
events table keyed by event_id per source), so a load that crashes before the spool is trimmed
is simply repeated and its events are recognized as already loaded: the loader is idempotent.
The workspace is held only for the load itself, so CLI commands can open it in between.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ContextManager, Protocol

from cxlens.service.spool import Spool
from cxlens.service.stopper import Stopper
from cxlens.stopping import Stopped
from cxlens.workspace import Workspace


class Readers(Protocol):
    """Readers' dashboard pages computed in this process beside a load, which defers to them (see
    `load_batch`; loadworker.PageReaders in the server)."""

    def computing(self) -> bool:
        """Whether a reader's page is being computed now."""
        ...

    def wait(self) -> None:
        """Return once no reader's page is being computed (or after a bounded wait)."""
        ...

    def quiet_commit(self) -> ContextManager[None]:
        """Held around a load's commit: entered once no read is in progress in this process (a page
        or a read API call), and none starts until it is left."""
        ...


class GaveWay(Exception):
    """A load stopped for a reader's page computed beside it (see `load_batch`): nothing of it was
    kept, its events are still in the spool, and the next turn loads them."""


@dataclass(frozen=True)
class LoadReport:
    """What one flush did (the `cxlens collect flush --format json` contract)."""

    loaded: int
    duplicates: int
    quarantined: int
    batches: int
    backlog: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_batch(workspace: Path, spool: Spool, limit: int, threads: int | None = None,
               profiles: bool = True, readers: Readers | None = None,
               give_way: bool = False) -> tuple[int, int, int, int]:
    """Load up to `limit` oldest pending events (of one source); (taken, loaded, duplicates, quarantined).

    `threads` caps DuckDB's threads for this load (all cores when None), so a server's load
    leaves CPU to the requests it keeps answering meanwhile. Identities are always resolved (every
    event goes in with its profile_id); with `profiles` False the profiles table is rebuilt only
    when no event arrived while this batch loaded (the spool is empty after it): a rebuild reads
    every record (1.4 s on the demo workspace), a cost a sustained backlog, or a steady stream of
    events, should not pay on every load (see ServiceSettings.profiles_every).

    With `readers`, the load defers to readers' pages computed in this process beside it (the two
    would share the cores and the GIL, and the reader would wait about twice as long): with
    `give_way` it stops as soon as a page is being computed and raises GaveWay, keeping nothing,
    as after a crash; otherwise it waits between its steps while one is; and it commits only
    while none is (`Readers.quiet_commit`), so a page never sees part of its data before the load
    and part after."""
    from cxlens.identity import resolve
    from cxlens.ingest.loader import ingest_file
    from cxlens.profiles import build_profiles
    from cxlens.semantic.kept import refresh_sessions

    source, last_seq, lines = spool.take(limit)
    if not lines:
        return 0, 0, 0, 0
    batch = spool.path.with_name(f"{spool.path.name}.{source}-{last_seq}-{os.getpid()}.ndjson")
    batch.write_text("\n".join(lines) + "\n", encoding="utf-8")
    try:
        with Workspace.open(workspace) as ws, contextlib.ExitStack() as gate:
            if threads is not None:
                ws.sql(f"SET threads = {int(threads)}")
            # The steps of ingest() for one file: load with identities, resolve whatever else is
            # pending, rebuild profiles, bring the kept sessions up to date (the keys touched). One
            # transaction: a dashboard page computed meanwhile (runtime.Access) sees all of it or
            # none, never new events beside out-of-date kept sessions; a crash keeps none of it.
            pause = readers.wait if readers is not None and not give_way else _go_on
            with ws.transaction():
                with Stopper(ws.backend, readers.computing if readers is not None and give_way else None) as stopper:
                    try:
                        r = ingest_file(ws, "events", batch, source=source, format="ndjson", resolve=True)
                        pause()
                        resolve(ws)
                        pause()
                        if profiles or spool.quick_backlog() <= len(lines):
                            build_profiles(ws)
                            pause()
                        refresh_sessions(ws)
                    except (Exception, Stopped):
                        if stopper.fired:
                            raise GaveWay() from None
                        raise
                if stopper.fired:  # a step may have swallowed the interruption: keep nothing
                    raise GaveWay()
                if readers is not None:
                    gate.enter_context(readers.quiet_commit())  # left after the commit
    finally:
        batch.unlink(missing_ok=True)
    spool.trim(source, last_seq)
    return len(lines), r.rows_loaded, r.rows_duplicate, r.rows_quarantined


def _go_on() -> None:
    pass


def flush(workspace: Path, spool: Spool, *, batch: int = 100_000, max_batches: int | None = None,
          threads: int | None = None, profiles: bool = True, readers: Readers | None = None,
          give_way: bool = False) -> LoadReport:
    """Load pending events batch by batch until the spool is empty (or `max_batches` ran); with
    `profiles` False, profiles are rebuilt only by a batch after which the spool is empty; with
    `readers`, each batch defers to readers' pages (see `load_batch`; with `give_way` it may stop
    for one: GaveWay)."""
    started = time.perf_counter()
    loaded = duplicates = quarantined = batches = 0
    while max_batches is None or batches < max_batches:
        taken, n, d, q = load_batch(workspace, spool, batch, threads, profiles, readers, give_way)
        if not taken:
            break
        batches += 1
        loaded, duplicates, quarantined = loaded + n, duplicates + d, quarantined + q
    return LoadReport(loaded, duplicates, quarantined, batches, spool.backlog().events,
                      round(time.perf_counter() - started, 3))


def refresh_kept(workspace: str) -> str:
    """Bring the derived tables the workspace keeps (its sessions) up to date; the server does it
    once at start-up, as the workspace may have been written by other code or an older cxlens
    since (one fingerprint scan when nothing changed). Returns the refresh's mode."""
    from cxlens.semantic.kept import refresh_sessions

    with Workspace.open(Path(workspace)) as ws:
        return refresh_sessions(ws).mode
