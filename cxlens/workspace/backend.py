"""Engines a workspace can live on: an embedded DuckDB file by default, Spark (or any Ibis backend).

Everything above this module speaks Ibis expressions; the few things Ibis leaves to each engine
(transactions, replacing a table, appending rows) are here, one class per engine.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from cxlens.errors import WorkspaceError
from cxlens.workspace.schema import Column

IBIS_TYPES: dict[str, dt.DataType] = {
    "string": dt.string,
    "timestamp": dt.Timestamp(),
    "date": dt.date,
    "float64": dt.float64,
    "int64": dt.int64,
    "boolean": dt.boolean,
    "json": dt.string,
}
"""JSON columns are stored as text so every engine can hold them; DuckDB's json functions read it."""

SQL_TYPES: dict[str, str] = {
    "string": "VARCHAR",
    "timestamp": "TIMESTAMP",
    "date": "DATE",
    "float64": "DOUBLE",
    "int64": "BIGINT",
    "boolean": "BOOLEAN",
    "json": "VARCHAR",
}


def ibis_schema(columns: tuple[Column, ...]) -> ibis.Schema:
    return ibis.schema({c.name: IBIS_TYPES[c.type] for c in columns})


class Backend:
    """The engine-specific part of a workspace."""

    name: str = "abstract"
    con: Any

    def tables(self) -> set[str]:
        return set(self.con.list_tables())

    def table(self, name: str) -> ir.Table:
        return self.con.table(name)

    def ensure_table(self, name: str, columns: tuple[Column, ...]) -> None:
        if name not in self.tables():
            self.con.create_table(name, schema=ibis_schema(columns))

    def replace_table(self, name: str, obj: Any) -> None:
        """Create or overwrite `name` with an Ibis expression, pandas or Arrow data."""
        self.con.create_table(name, obj, overwrite=True)

    def insert(self, name: str, obj: Any) -> None:
        self.con.insert(name, obj)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        yield

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.con.disconnect()


class DuckDBBackend(Backend):
    """An embedded DuckDB file: transactions make every ingest all-or-nothing."""

    name = "duckdb"

    def __init__(self, path: str | Path, *, read_only: bool = False, memory_limit: str | None = None):
        self.path = Path(path)
        self.con = _connect_waiting(self.path, read_only)
        self.raw = self.con.con
        self.raw.execute("SET TimeZone = 'UTC'")
        # Never print DuckDB's own bar; the CLI turns tracking on when it shows one (it costs ~5%).
        self.raw.execute("SET enable_progress_bar = false")
        self.raw.execute("SET enable_progress_bar_print = false")
        if memory_limit:
            self.raw.execute(f"SET memory_limit = '{memory_limit}'")
        self._depth = 0

    def sql(self, query: str, params: list[Any] | None = None) -> Any:
        return self.raw.execute(query, params or [])

    def tables(self) -> set[str]:
        rows = self.raw.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
        ).fetchall()
        return {r[0] for r in rows}

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN/COMMIT on the file; nested uses join the outer transaction."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.raw.execute("BEGIN TRANSACTION")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            with contextlib.suppress(Exception):
                self.raw.execute("ROLLBACK")
            raise
        else:
            self._depth = 0
            self.raw.execute("COMMIT")


class SparkBackend(Backend):
    """A Spark session (local mode in tests); no transactions, so loads are not atomic here."""

    name = "pyspark"

    def __init__(self, session: Any, database: str | None = None):
        self.session = session
        if database:
            session.sql(f"CREATE DATABASE IF NOT EXISTS {database}")
            session.catalog.setCurrentDatabase(database)
        self.con = ibis.pyspark.connect(session)

    def _frame(self, obj: Any) -> Any:
        """A Spark DataFrame from an Ibis expression, Arrow or pandas data, through Arrow.

        Going through Arrow (not pandas) keeps NULLs in string columns NULL; pandas turns them into
        the text 'NaN' on the way into Spark. An expression is materialized first because Spark
        reads lazily and the query may read the table being overwritten.
        """
        import pyarrow as pa

        if isinstance(obj, ir.Table):
            obj = obj.to_pyarrow()
        elif not isinstance(obj, pa.Table):
            obj = pa.Table.from_pandas(obj, preserve_index=False)
        return self.session.createDataFrame(obj)

    def replace_table(self, name: str, obj: Any) -> None:
        self._frame(obj).write.saveAsTable(name, mode="overwrite", format="parquet")

    def insert(self, name: str, obj: Any) -> None:
        frame = self._frame(obj)
        target = self.session.table(name).columns
        frame.select(*target).write.insertInto(name)


LOCK_WAIT_ENV = "CXLENS_LOCK_WAIT"
DEFAULT_LOCK_WAIT = 10.0
"""Seconds an open waits for another process's lock: DuckDB allows one writing process per file,
and `cxlens serve` holds it only for a moment per load, so a CLI command waits instead of failing."""


def _connect_waiting(path: Path, read_only: bool) -> Any:
    """Connect, retrying while another process holds the file's lock (up to CXLENS_LOCK_WAIT s)."""
    try:
        wait = float(os.environ.get(LOCK_WAIT_ENV) or DEFAULT_LOCK_WAIT)
    except ValueError:
        wait = DEFAULT_LOCK_WAIT
    deadline = time.monotonic() + max(wait, 0.0)
    pause = 0.02
    while True:
        try:
            return ibis.duckdb.connect(str(path), read_only=read_only, storage_compatibility_version="latest")
        except Exception as exc:  # noqa: BLE001 - duckdb raises IOException for locks and unreadable files
            if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                raise WorkspaceError(_explain_open_error(path, exc, wait)) from None
        time.sleep(pause)
        pause = min(pause * 1.5, 0.25)


def _explain_open_error(path: Path, exc: Exception, waited: float = 0.0) -> str:
    text = str(exc)
    if "lock" in text.lower():
        pid = re.search(r"PID (\d+)", text)
        who = f" (process {pid.group(1)})" if pid else ""
        return (
            f"The workspace {path} is busy: it is in use by another cxlens process{who}, which kept it "
            f"for more than {waited:g} s; wait for it to finish or stop it, then try again (or raise {LOCK_WAIT_ENV})."
        )
    if not path.parent.exists():
        return f"Cannot create the workspace {path}: the folder {path.parent} does not exist."
    return f"Cannot open the workspace {path}: it is not a DuckDB file cxlens can read ({text.splitlines()[0]})."
