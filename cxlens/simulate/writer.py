"""Exports as files: one data file in its system's own layout plus a mapping YAML beside it.

Files are written through DuckDB's COPY, which keeps row order and writes gzip without a
timestamp, so the same seed gives byte-identical files.
"""

from __future__ import annotations

import gzip
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import duckdb
import numpy as np
import pyarrow as pa
import yaml

from cxlens.workspace.schema import IDENTITY_COLUMNS, target_table

FileFormat = Literal["csv", "csv.gz", "ndjson", "ndjson.gz"]
Reason = Literal["missing_required", "bad_timestamp", "bad_date", "bad_number", "bad_integer", "bad_boolean",
                 "out_of_scale", "unknown_value", "bad_json"]
REASONS: tuple[str, ...] = ("missing_required", "bad_timestamp", "bad_date", "bad_number", "bad_integer",
                            "bad_boolean", "out_of_scale", "unknown_value", "bad_json")


@dataclass(frozen=True)
class DirtSpec:
    """One kind of broken value an export may contain: which column, why it fails, raw values used."""

    column: str
    source_column: str
    reason: Reason
    values: tuple[str | None, ...]
    rows: np.ndarray | None = None
    """Rows this problem may be put in (None = any unprotected row)."""


@dataclass
class Export:
    """A source system's export: its columns (in file order) and how it maps to a canonical table."""

    file: str
    table: str
    source: str | None
    columns: dict[str, np.ndarray]
    mapping_columns: dict[str, Any]
    person: np.ndarray
    """Simulated person behind each row (-1 when the row names nobody); never written."""
    fmt: FileFormat = "csv"
    delimiter: str = ","
    identifiers: dict[str, str] = field(default_factory=dict)
    filters: str | None = None
    dirt: tuple[DirtSpec, ...] = ()
    dirt_rate: float = 0.006
    duplicate_rate: float = 0.0
    protect: np.ndarray | None = None
    clean: np.ndarray | None = None
    """After dirt: which rows are clean (set by dirt.apply_dirt)."""

    @property
    def rows(self) -> int:
        return int(self.person.size)

    @property
    def mapping_file(self) -> str:
        return self.file.split(".")[0] + ".yml"

    @property
    def first_line(self) -> int:
        """Line number of the first data row (a CSV header is line 1)."""
        return 2 if self.fmt.startswith("csv") else 1

    def mapping(self) -> dict[str, Any]:
        """The mapping YAML content, columns in canonical order."""
        order = target_table(self.table).column_names
        cols = {k: self.mapping_columns[k] for k in order if k in self.mapping_columns}
        cols.update({k: v for k, v in self.mapping_columns.items() if k not in cols})
        out: dict[str, Any] = {"table": self.table}
        if self.source:
            out["source"] = self.source
        out["columns"] = cols
        if self.identifiers:
            out["identifiers"] = dict(self.identifiers)
        if self.filters:
            out["filters"] = self.filters
        if self.delimiter != ",":
            out["options"] = {"delimiter": self.delimiter}
        return out

    def identity_columns(self) -> dict[str, str]:
        """Identity type -> source column for every identity column mapped by name."""
        out = {k: v for k, v in self.mapping_columns.items() if k in IDENTITY_COLUMNS and isinstance(v, str)}
        out.update(self.identifiers)
        return out


def _arrow(values: np.ndarray) -> pa.Array:
    if values.dtype == object:
        try:
            return pa.array(values, type=pa.string())
        except pa.ArrowTypeError:
            return pa.array(values)
    if values.dtype.kind == "f":
        return pa.array(values, from_pandas=True)
    return pa.array(values)


def write_export(export: Export, out_dir: Path, con: duckdb.DuckDBPyConnection) -> None:
    """Write the data file and its mapping YAML.

    DuckDB writes plain text fast; gzip is applied afterwards by Python at level 1 with no name and
    a zero timestamp in the header, which is several times faster than DuckDB's own gzip and still
    byte-identical across runs.
    """
    table = pa.table({k: _arrow(v) for k, v in export.columns.items()})
    path = out_dir / export.file
    plain = path.with_name(path.name + ".part") if export.fmt.endswith(".gz") else path
    con.register("_export", table)
    try:
        if export.fmt.startswith("ndjson"):
            con.execute(f"COPY _export TO '{plain}' (FORMAT json)")
        else:
            con.execute(f"COPY _export TO '{plain}' (FORMAT csv, HEADER, DELIMITER '{export.delimiter}')")
    finally:
        con.unregister("_export")
    if plain != path:
        with open(plain, "rb") as src, open(path, "wb") as raw, \
                gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=1, mtime=0) as dst:
            shutil.copyfileobj(src, dst, 4 << 20)
        plain.unlink()
    header = f"# {export.file} -> {export.table}: generated by `cxlens simulate`.\n"
    (out_dir / export.mapping_file).write_text(header + yaml.safe_dump(export.mapping(), sort_keys=False, allow_unicode=True))


def as_text(values: np.ndarray) -> np.ndarray:
    """A column as text cells (None for null) so a broken value can replace one of them."""
    if values.dtype == object:
        return values.copy()
    if values.dtype.kind == "f":
        text = values.astype(str).astype(object)
        text[np.isnan(values)] = None
        return text
    if values.dtype.kind == "b":
        return np.where(values, "true", "false").astype(object)
    return values.astype(str).astype(object)
