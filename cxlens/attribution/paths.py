"""Path counts: distinct conversion paths with their conversions, non-conversions and value.

This is the layout of the R package ChannelAttribution (one row per distinct path, the channels
joined by a separator such as " > ", then total_conversions, total_null and
total_conversion_value). Every model reads only these counts, so a path file and the workspace's
journeys go through the same code. Files are read and grouped by DuckDB; paths are held as lists
of channel names (identical paths merged), and the models run their SQL over them in an
in-memory DuckDB.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from cxlens.errors import IngestError, UsageError

PATH_SCHEMA = pa.schema([pa.field("channels", pa.list_(pa.string())), pa.field("conversions", pa.float64()),
                         pa.field("nulls", pa.float64()), pa.field("value", pa.float64())])
SEPARATOR_HINTS = (">", "|", ";", "→")
"""Characters that usually join channels; seen in paths that never contain the separator, they point to a wrong one."""


@dataclass(frozen=True)
class PathCounts:
    """Distinct paths (lists of channels) with conversions, nulls (non-converting paths) and conversion value."""

    table: pa.Table

    @property
    def total_conversions(self) -> float:
        return float(pa.compute.sum(self.table["conversions"]).as_py() or 0.0)

    @property
    def total_value(self) -> float:
        return float(pa.compute.sum(self.table["value"]).as_py() or 0.0)

    @property
    def total_nulls(self) -> float:
        return float(pa.compute.sum(self.table["nulls"]).as_py() or 0.0)

    def __len__(self) -> int:
        return self.table.num_rows

    def connect(self) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB with this table as `paths` (channels, conversions, nulls, value)."""
        con = duckdb.connect()
        con.register("paths", self.table)
        return con

    def channels(self) -> list[str]:
        """Every channel on some path, sorted."""
        con = self.connect()
        try:
            return [r[0] for r in con.sql("SELECT DISTINCT unnest(channels) AS c FROM paths ORDER BY c").fetchall()]
        finally:
            con.close()

    @classmethod
    def from_paths(cls, paths: Sequence[str], conversions: Sequence[float], nulls: Sequence[float] | None = None,
                   value: Sequence[float] | None = None, *, separator: str = " > ") -> PathCounts:
        """Path counts from Python lists (paths as strings joined by `separator`)."""
        n = len(paths)
        raw = pa.table({"path": pa.array(list(paths), pa.string()), "conversions": pa.array(list(conversions), pa.float64()),
                        "nulls": pa.array(list(nulls) if nulls is not None else [0.0] * n, pa.float64()),
                        "value": pa.array(list(value) if value is not None else [0.0] * n, pa.float64())})
        con = duckdb.connect()
        try:
            con.register("raw", raw)
            return _normalize(con, "raw", separator, "the given paths")
        finally:
            con.close()


def read_path_file(file: str | Path, *, path_column: str = "path", conversions_column: str = "total_conversions",
                   null_column: str | None = "total_null", value_column: str | None = "total_conversion_value",
                   separator: str = " > ") -> PathCounts:
    """Read a ChannelAttribution-layout CSV (or Parquet) file; the null and value columns may be absent.

    The null column is optional in practice (a file of converting paths only); when the default
    name is missing the paths count no non-conversions, but a column named explicitly must exist.
    """
    file = Path(file)
    if not file.exists():
        raise IngestError(f"Path file {file} does not exist.")
    if not separator:
        raise UsageError("The separator is empty; give the text that joins channels in a path, e.g. --separator \" > \".")
    con = duckdb.connect()
    try:
        reader = "read_parquet" if file.suffix.lower() == ".parquet" else "read_csv"
        options = "" if reader == "read_parquet" else ", header = true, all_varchar = true"
        try:
            literal = "'" + str(file).replace("'", "''") + "'"
            # Read once into a table: every check below and the grouping then scan memory, not the file.
            con.execute(f"CREATE TEMP TABLE src AS SELECT * FROM {reader}({literal}{options})")
            columns = [r[0] for r in con.sql("DESCRIBE src").fetchall()]
        except duckdb.Error as exc:
            raise IngestError(f"Path file {file} cannot be read as {'Parquet' if reader == 'read_parquet' else 'CSV'}: "
                              f"{str(exc).splitlines()[0]}") from exc
        if con.sql("SELECT count(*) FROM src").fetchone()[0] == 0:
            raise IngestError(f"Path file {file} has no rows; it needs one row per path with its conversion counts.")
        chosen = {"path": path_column, "conversions": conversions_column, "nulls": null_column, "value": value_column}
        defaults = {"nulls": "total_null", "value": "total_conversion_value"}
        for role, name in chosen.items():
            if name is None or name in columns:
                continue
            if role in defaults and name == defaults[role]:
                chosen[role] = None
                continue
            raise IngestError(f"Path file {file} has no column {name!r} (the {role} column); its columns are "
                              f"{', '.join(map(repr, columns))}.")
        numbers = []
        for role in ("conversions", "nulls", "value"):
            name = chosen[role]
            if name is None:
                numbers.append(f"0.0 AS {role}")
                continue
            col = _quote(name)
            bad = con.sql(f"SELECT min(rowid) + 2 AS line, arg_min({col}, rowid) FROM src WHERE {col} IS NOT NULL AND "
                          f"coalesce(TRY_CAST({col} AS DOUBLE) < 0, true)").fetchall()
            bad = [row for row in bad if row[0] is not None]
            if bad:
                raise IngestError(f"Path file {file}, line {bad[0][0]}: column {name!r} holds {bad[0][1]!r}; "
                                  "counts and values must be numbers >= 0.")
            numbers.append(f"coalesce(TRY_CAST({col} AS DOUBLE), 0.0) AS {role}")
        # Identical path texts are merged before they are split, so the lists are built once per distinct text.
        con.execute(f"CREATE TEMP TABLE raw AS SELECT path, sum(conversions) AS conversions, sum(nulls) AS nulls, "
                    f"sum(value) AS value FROM (SELECT CAST({_quote(path_column)} AS VARCHAR) AS path, {', '.join(numbers)} "
                    f"FROM src) GROUP BY path")
        return _normalize(con, "raw", separator, f"Path file {file}")
    finally:
        con.close()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _normalize(con: duckdb.DuckDBPyConnection, raw: str, separator: str, where: str) -> PathCounts:
    """Split paths on the separator, trim channel names, reject empty names, merge identical paths."""
    if not separator:
        raise UsageError("The separator is empty; give the text that joins channels in a path, e.g. \" > \".")
    # " > " also splits "A>B": the separator is matched without its surrounding spaces, which are trimmed anyway.
    con.execute(f"CREATE OR REPLACE TEMP TABLE split AS SELECT path, "
                f"list_transform(string_split(path, ?), x -> trim(x)) AS channels, conversions, nulls, value FROM {raw}",
                [separator.strip() or separator])
    empty = con.sql("SELECT path FROM split WHERE path IS NULL OR list_contains(channels, '') LIMIT 1").fetchall()
    if empty:
        shown = "an empty path" if empty[0][0] is None or not empty[0][0].strip() else f"path {empty[0][0]!r}"
        raise IngestError(f"{where}: {shown} has an empty channel name; every channel between separators "
                          f"({separator!r}) needs a name.")
    multi = con.sql("SELECT count(*) FROM split WHERE len(channels) > 1").fetchone()[0]
    if not multi:
        hints = list(SEPARATOR_HINTS)
        found = con.sql("SELECT path FROM split WHERE " + " OR ".join(["contains(path, ?)"] * len(hints)) + " LIMIT 1",
                        params=hints).fetchall()
        if found:
            raise IngestError(f"{where}: no path contains the separator {separator!r}, but {found[0][0]!r} looks like "
                              "several channels; give the separator the paths use, e.g. --separator \">\".")
    merged = con.sql("SELECT channels, sum(conversions)::DOUBLE AS conversions, sum(nulls)::DOUBLE AS nulls, "
                     "sum(value)::DOUBLE AS value FROM split GROUP BY channels "
                     "ORDER BY conversions DESC, nulls DESC, array_to_string(channels, chr(31))").to_arrow_table()
    return PathCounts(merged.cast(PATH_SCHEMA))


def touch_counts(paths: PathCounts) -> dict[str, float]:
    """How many touches each channel has over all paths, converting or not (each path weighted by its count)."""
    con = paths.connect()
    try:
        rows = con.sql("SELECT c, sum(conversions + nulls)::DOUBLE FROM (SELECT unnest(channels) AS c, conversions, nulls "
                       "FROM paths) GROUP BY c").fetchall()
    finally:
        con.close()
    return {str(c): float(n) for c, n in rows}
