"""The write-ahead spool: collected events are durable here before the API acknowledges them.

A SQLite file next to the workspace in WAL mode with `synchronous=FULL`: each accepted batch is one
transaction whose commit appends to the write-ahead log and fsyncs it, so an acknowledged event
survives a SIGKILL or power loss; a torn last write is rolled back by SQLite, never half-read.
The same transaction records every event_id it accepts with the time, so a repeat is answered as a
duplicate (and the loader, keyed by event_id, stores it once even if a crash lands between the two
files). Those ids are pruned after a retention window (`prune`); a resend arriving later is
accepted again, and the workspace's events table, keyed by event_id per source, still stores it once.
SQLite also lets `cxlens collect flush` in another process read it while the server appends.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cxlens.errors import WorkspaceError

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS pending (seq INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, event TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS seen (event_id TEXT PRIMARY KEY, at INTEGER NOT NULL) WITHOUT ROWID",
)
TRIM_CHUNK = 5_000
"""Loaded events forgotten per transaction (see `trim`)."""
PRUNE_CHUNK = 20_000
"""Ids forgotten per transaction, so a large prune never holds up appends for long."""


@dataclass
class _Slot:
    """One request's events waiting for a group commit; `done` once committed (or failed)."""

    source: str
    events: list[tuple[str, str]]
    accepted: int = 0
    done: bool = False
    error: BaseException | None = None


@dataclass(frozen=True)
class Appended:
    accepted: int
    duplicates: int


@dataclass(frozen=True)
class Backlog:
    events: int
    oldest_seq: int | None
    path: str

    def to_dict(self) -> dict[str, Any]:
        return {"backlog": self.events, "oldest_seq": self.oldest_seq, "spool": self.path}


class Spool:
    """Append, read and trim pending events; safe across threads and processes."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue: list[_Slot] = []
        try:
            self._con = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
            self._con.execute("PRAGMA journal_mode=WAL")
            self._con.execute("PRAGMA synchronous=FULL")
            for statement in SCHEMA:
                self._con.execute(statement)
            self._add_seen_times()
        except sqlite3.Error as exc:
            raise WorkspaceError(f"Cannot open the event spool {self.path}: {exc}.") from None
        self._estimate = 0
        self.quick_backlog()
        self._read_lock = threading.Lock()
        try:
            self._reader = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise WorkspaceError(f"Cannot open the event spool {self.path}: {exc}.") from None

    def _add_seen_times(self) -> None:
        """Spools written before pruning existed have no `at` column: add it, dated now (their
        ids are kept one more retention window), and the index pruning reads."""
        with self._transaction() as con:
            if "at" not in {row[1] for row in con.execute("PRAGMA table_info(seen)")}:
                con.execute("ALTER TABLE seen ADD COLUMN at INTEGER")
                con.execute("UPDATE seen SET at = ?", (int(time.time()),))
            con.execute("CREATE INDEX IF NOT EXISTS seen_at ON seen (at)")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._con.execute("BEGIN IMMEDIATE")
            try:
                yield self._con
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
            self._con.execute("COMMIT")

    def append(self, events: list[dict[str, Any]], source: str) -> Appended:
        """Store events whose event_id is new (first of repeats wins); durable on return.

        Each keeps the source name it was collected under, so whoever loads it (the server or
        `cxlens collect flush`) files it under that source. Group commit: requests that arrive
        while another's commit is fsyncing wait for the lock, and the first to get it commits every
        waiting request in one transaction (one fsync), so concurrent requests share the disk's
        flushes instead of queueing one fsync each; each still returns only after its commit."""
        if not events:
            return Appended(0, 0)
        slot = _Slot(source, [(e["event_id"], json.dumps(e, ensure_ascii=False, separators=(",", ":"))) for e in events])
        with self._queue_lock:
            self._queue.append(slot)
        with self._lock:
            if not slot.done:
                with self._queue_lock:
                    group, self._queue = self._queue, []
                self._commit_group(group)
        if slot.error is not None:
            raise slot.error
        return Appended(slot.accepted, len(events) - slot.accepted)

    def _commit_group(self, group: list[_Slot]) -> None:
        """One transaction for every waiting request, in arrival order (the caller holds the lock)."""
        now = int(time.time())
        con = self._con
        try:
            con.execute("BEGIN IMMEDIATE")
            try:
                accepted = []
                for slot in group:
                    rows = [(slot.source, text) for event_id, text in slot.events
                            if con.execute("INSERT OR IGNORE INTO seen (event_id, at) VALUES (?, ?)", (event_id, now)).rowcount]
                    con.executemany("INSERT INTO pending (source, event) VALUES (?, ?)", rows)
                    accepted.append(len(rows))
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
        except BaseException as exc:
            for slot in group:
                slot.error, slot.done = exc, True
            return
        for slot, n in zip(group, accepted, strict=True):
            slot.accepted, slot.done = n, True
        self._estimate += sum(accepted)

    def backlog(self) -> Backlog:
        with self._lock:
            n, oldest = self._con.execute("SELECT count(*), min(seq) FROM pending").fetchone()
        return Backlog(int(n), oldest, str(self.path))

    def quick_backlog(self) -> int:
        """An upper bound of the backlog in O(1) (sequence numbers are dense between loads)."""
        with self._lock:
            lo, hi = self._con.execute("SELECT min(seq), max(seq) FROM pending").fetchone()
            self._estimate = 0 if lo is None else int(hi) - int(lo) + 1
            return self._estimate

    def pending_estimate(self) -> int:
        """The backlog as this process last saw it, without a lock or I/O: cheap enough for the
        event loop to check on every request (back-pressure). Appends and trims here keep it
        current; `quick_backlog()` corrects it for what other processes (`cxlens collect flush`) did."""
        return self._estimate

    def take(self, limit: int) -> tuple[str, int, list[str]]:
        """The source of the oldest pending event, and up to `limit` oldest pending events (JSON
        text) of that source with the last sequence number among them."""
        with self._read_lock:  # a second connection: WAL lets it read while appends commit
            first = self._reader.execute("SELECT source FROM pending ORDER BY seq LIMIT 1").fetchone()
            if first is None:
                return "", 0, []
            rows = self._reader.execute("SELECT seq, event FROM pending WHERE source = ? ORDER BY seq LIMIT ?",
                                        (first[0], limit)).fetchall()
        return first[0], rows[-1][0], [r[1] for r in rows]

    def trim(self, source: str, through_seq: int) -> None:
        """Forget `source`'s pending events up to `through_seq`: only after they are in the workspace.

        In chunks, so appends waiting for the lock get in between (a crash half-way leaves events
        the next load recognizes as already loaded)."""
        while True:
            with self._transaction() as con:
                deleted = con.execute("DELETE FROM pending WHERE seq IN (SELECT seq FROM pending WHERE source = ? AND "
                                      "seq <= ? ORDER BY seq LIMIT ?)", (source, through_seq, TRIM_CHUNK)).rowcount
                self._estimate = max(0, self._estimate - deleted)
            if deleted < TRIM_CHUNK:
                return

    def prune(self, before: float) -> int:
        """Forget the event_ids first received before `before` (a Unix time); the number forgotten.

        Without this the table of seen ids grows with every event ever collected. A resend of a
        forgotten id is accepted again and loaded once all the same (the events table is keyed by
        event_id per source); only its answer says `accepted` instead of `duplicates`."""
        forgotten = 0
        while True:
            with self._transaction() as con:
                n = con.execute("DELETE FROM seen WHERE event_id IN (SELECT event_id FROM seen WHERE at < ? LIMIT ?)",
                                (int(before), PRUNE_CHUNK)).rowcount
            forgotten += n
            if n < PRUNE_CHUNK:
                return forgotten

    def seen_count(self) -> int:
        """How many event_ids are remembered for duplicate answers."""
        with self._lock:
            return int(self._con.execute("SELECT count(*) FROM seen").fetchone()[0])

    def close(self) -> None:
        with self._lock, self._read_lock:
            self._reader.close()
            self._con.close()
