"""Analyze an experiment from a per-unit file (CSV, Parquet, JSON; gzip too) an analyst exported.

One row per unit: the variant column, metric columns and optionally a pre-period covariate.
DuckDB reads the file and computes every sufficient statistic in one query, so a file of
millions of units never becomes a Python object. A metric named ``num/den`` is a ratio metric
(``spend/visit``: spend per visit, by the delta method).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb
import pandas as pd

from cxlens.errors import IngestError, UsageError
from cxlens.experiments.analysis import (
    DEFAULT_SETTINGS,
    VARIABLES,
    Analysis,
    MetricSpec,
    Settings,
    analyze_cells,
)
from cxlens.stats.sums import column_names

_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT",
            "FLOAT", "DOUBLE", "BOOLEAN")


def analyze_file(
    path: str | Path,
    *,
    variant_column: str,
    control: str,
    metrics: Sequence[str],
    covariate: str | None = None,
    settings: Settings = DEFAULT_SETTINGS,
    by: str | None = None,
) -> Analysis:
    """One result per non-control variant and metric (and segment value of ``by``)."""
    if not metrics:
        raise UsageError("Name at least one metric column with --metric (e.g. --metric conversion).")
    con = duckdb.connect()
    try:
        relation = _read(con, Path(path))
        columns = dict(zip(relation.columns, (str(t) for t in relation.types)))
        con.register("units", relation)
        parts = {m: _parts(m) for m in metrics}
        needed = [variant_column, *(c for p in parts.values() for c in p), *([covariate] if covariate else []), *([by] if by else [])]
        _check_columns(Path(path), columns, needed, variant_column, by)
        kinds = {m: _kind(con, p) for m, p in parts.items()}
        specs = [MetricSpec(id=m, kind=kinds[m], cuped=covariate is not None) for m in metrics]
        cells = pd.concat([_cells(con, spec, parts[spec.id], variant_column, covariate, by) for spec in specs], ignore_index=True)
        units = _units(con, variant_column)
    finally:
        con.close()
    if control not in units:
        raise UsageError(
            f"--control {control!r} is not a value of column {variant_column!r}; its values are: "
            f"{', '.join(map(repr, units))}."
        )
    analysis = analyze_cells(cells, specs, control=control, units=units, settings=settings, by=by)
    analysis.extra["file"] = str(path)
    return analysis


def _read(con: duckdb.DuckDBPyConnection, path: Path) -> duckdb.DuckDBPyRelation:
    if not path.is_file():
        raise IngestError(f"{path}: no such file.")
    name = path.name.lower().removesuffix(".gz")
    try:
        if name.endswith((".parquet", ".pq")):
            return con.read_parquet(str(path))
        if name.endswith((".json", ".ndjson", ".jsonl")):
            return con.read_json(str(path))
        return con.read_csv(str(path))
    except duckdb.Error as e:
        raise IngestError(f"{path}: cannot be read as a table of units ({str(e).splitlines()[0]}).") from None


def _parts(metric: str) -> tuple[str, ...]:
    parts = tuple(p.strip() for p in metric.split("/"))
    if len(parts) > 2 or not all(parts):
        raise UsageError(f"--metric {metric!r}: give a column, or numerator/denominator for a ratio metric.")
    return parts


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _check_columns(path: Path, columns: dict[str, str], needed: list[str], variant: str, by: str | None) -> None:
    missing = [c for c in dict.fromkeys(needed) if c not in columns]
    if missing:
        raise UsageError(f"{path}: no column {', '.join(map(repr, missing))}; its columns are: {', '.join(columns)}.")
    for name in dict.fromkeys(needed):
        if name in (variant, by):
            continue
        if not columns[name].startswith(("DECIMAL",)) and columns[name] not in _NUMERIC:
            raise UsageError(f"{path}: column {name!r} holds {columns[name]} values; metric and covariate columns must be numeric.")


def _kind(con: duckdb.DuckDBPyConnection, parts: tuple[str, ...]) -> str:
    if len(parts) == 2:
        return "ratio"
    y = f"CAST({_quote(parts[0])} AS DOUBLE)"
    binary = con.sql(f"SELECT coalesce(bool_and({y} IN (0, 1)), false) FROM units").fetchone()
    return "proportion" if binary and binary[0] else "mean"


def _cells(con: duckdb.DuckDBPyConnection, spec: MetricSpec, parts: tuple[str, ...], variant: str,
           covariate: str | None, by: str | None) -> pd.DataFrame:
    names = VARIABLES[(spec.kind, spec.cuped)]
    source = {"y": parts[0], "d": parts[1] if len(parts) == 2 else None, "x": covariate, "e": None}
    value = {v: f"CAST({_quote(source[v])} AS DOUBLE)" if source[v] else "1.0" for v in names}  # type: ignore[arg-type]
    complete = " AND ".join(f"{value[v]} IS NOT NULL" for v in names if source[v])
    aggregates = []
    for column in column_names(names):
        if column == "n":
            aggregates.append(f"count(*) FILTER (WHERE {complete}) AS n")
            continue
        factors = column.removeprefix("sum_").split("_")
        product = " * ".join(value[f] for f in factors)
        aggregates.append(f"sum({product}) FILTER (WHERE {complete}) AS {column}")
    keys = [f"CAST({_quote(variant)} AS VARCHAR) AS variant"] + ([f"CAST({_quote(by)} AS VARCHAR) AS {_quote(by)}"] if by else [])
    group = ", ".join(str(i + 1) for i in range(len(keys)))
    sql = f"SELECT {', '.join(keys)}, {', '.join(aggregates)} FROM units WHERE {_quote(variant)} IS NOT NULL GROUP BY {group}"
    cells = con.sql(sql).df()
    cells.insert(0, "metric", spec.id)
    return cells


def _units(con: duckdb.DuckDBPyConnection, variant: str) -> dict[str, int]:
    rows = con.sql(
        f"SELECT CAST({_quote(variant)} AS VARCHAR), count(*) FROM units WHERE {_quote(variant)} IS NOT NULL GROUP BY 1 ORDER BY 1"
    ).fetchall()
    return {str(v): int(n) for v, n in rows}
