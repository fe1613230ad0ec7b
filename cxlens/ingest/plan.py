"""The SQL that turns a staged source file into canonical rows, a problem code per row, and keys.

Built once per file from the mapping and the file's columns, then run in the engine over all rows
at once. A CSV is read as text; a column that an `expr`/`filters` uses as a number (arithmetic,
comparison with a number) is cast where it is used, and a value that is not a number is
quarantined with its raw text rather than silently becoming NULL.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cxlens.errors import MappingError
from cxlens.ingest.expressions import checked_expression
from cxlens.ingest.mapping import Mapping
from cxlens.ingest.validate import column_sql, lit, q, score_scale_check
from cxlens.workspace.schema import Table


NO_ATTRIBUTES = "CAST(NULL AS VARCHAR)"
"""The attributes SQL of a file whose every column has a canonical place."""


@dataclass(frozen=True)
class Check:
    """One way a row can fail: which canonical column, why, and the raw text to keep."""

    column: str
    reason: str
    raw: str


@dataclass
class Plan:
    table: Table
    mapping: Mapping
    base_sql: str
    """SELECT over the file's columns, in file order."""
    values: dict[str, str]
    """Canonical column -> SQL of its parsed value (over base)."""
    problem: str
    """SQL giving the index of the first failing check, -1 when filtered out, NULL when valid."""
    checks: list[Check]
    attributes: str
    record_key: str
    declared: dict[str, str] = field(default_factory=dict)
    """Declared identifier type -> SQL of its raw value."""

    @property
    def staged(self) -> list[str]:
        """Canonical columns the file fills, in canonical order (the others load as NULL)."""
        return [c.name for c in self.table.columns if self.values[c.name] != "NULL"]

    @property
    def key_column(self) -> str | None:
        """The staged column whose value is the record key, when the key is one text column."""
        for c in self.table.columns:
            if self.values[c.name] != "NULL" and c.type == "string" and self.record_key in (
                self.values[c.name], f"CAST({self.values[c.name]} AS VARCHAR)"
            ):
                return c.name
        return None


def build_plan(source_sql: str, file_columns: list[tuple[str, str]], mapping: Mapping, table: Table,
               *, source: str, where: str) -> Plan:
    """Compile the mapping against the file's actual columns (name, DuckDB type)."""
    names = [n for n, _ in file_columns]
    types = dict(file_columns)
    by_lower = {n.lower(): n for n in names}

    def resolve(col: str, canonical: str) -> str:
        found = by_lower.get(col.lower())
        if found is None:
            raise MappingError(
                f"{where} maps `{canonical}` to the column `{col}`, which the file does not have "
                f"(columns: {', '.join(names)})."
            )
        return found

    def raw_of(col: str) -> str:
        t = types[col]
        if t.startswith(("STRUCT", "MAP")) or t.endswith("]") or t == "JSON":
            return f"CAST(to_json({q(col)}) AS VARCHAR)"
        return f"CAST({q(col)} AS VARCHAR)"

    exprs = {
        canonical: checked_expression(src.expr, names, where=where, what=f"the expression for `{canonical}`")
        for canonical, src in mapping.columns.items() if src.expr is not None
    }
    filt = checked_expression(mapping.filters, names, where=where, what="the filter") if mapping.filters else None
    declared = {k: resolve(v, f"identifier {k}") for k, v in mapping.identifiers.items()}
    base_sql = source_sql

    checks: list[Check] = []
    whens: list[str] = []

    def add(check: Check, cond: str) -> None:
        whens.append(f"WHEN {cond} THEN {len(checks)}")
        checks.append(check)

    def not_a_number(column: str, canonical: str) -> None:
        raw = f"CAST({q(column)} AS VARCHAR)"
        add(Check(canonical, "bad_number", raw),
            f"(NULLIF(trim({raw}), '') IS NOT NULL AND TRY_CAST(trim({raw}) AS DOUBLE) IS NULL)")

    # 1. values the filter reads as numbers, then the filter itself (NULL counts as false, as in SQL)
    if filt is not None:
        for c in sorted(filt.numeric):
            not_a_number(c, c)
        whens.append(f"WHEN NOT coalesce(({filt.sql}), false) THEN -1")

    # 2. canonical columns in canonical order: required, type, allowed values, scale
    values: dict[str, str] = {}
    for col in table.columns:
        src = mapping.columns.get(col.name)
        if src is None:
            values[col.name] = "NULL"
            continue
        if src.expr is not None:
            for c in sorted(exprs[col.name].numeric):
                not_a_number(c, col.name)
            raw = f"CAST(({exprs[col.name].sql}) AS VARCHAR)"
        else:
            raw = raw_of(resolve(src.column or "", col.name))
        spec = column_sql(col, raw, src.format)
        values[col.name] = spec.value
        for cond, reason in spec.checks:
            add(Check(col.name, reason, raw), cond)
        if col.name == "score" and values.get("survey_type", "NULL") != "NULL":
            add(Check("score", "out_of_scale", raw), score_scale_check(spec.value, values["survey_type"]))

    problem = ("CASE " + " ".join(whens) + " END") if whens else "CAST(NULL AS INTEGER)"

    used = {src.column.lower() for src in mapping.columns.values() if src.column}
    for e in [*exprs.values(), *([filt] if filt else [])]:
        used |= {c.lower() for c in e.columns}
    extra = [n for n in names if n.lower() not in used]
    attributes = (
        "json_object(" + ", ".join(f"{lit(n)}, {raw_of(n)}" for n in extra) + ")" if extra else NO_ATTRIBUTES
    )
    record_key = _record_key_sql(table, values, attributes)
    declared_sql = {k: f"NULLIF(trim({raw_of(v)}), '')" for k, v in declared.items()}
    return Plan(table, mapping, base_sql, values, problem, checks, attributes, record_key, declared_sql)


def _record_key_sql(table: Table, values: dict[str, str], attributes: str) -> str:
    """Natural key text, or an md5 content hash of the parsed row when the table has none.

    Events take the hash as their event_id when the source has none (DESIGN.md), so the same
    event exported twice is stored once.
    """
    parts = [
        f"coalesce(CAST({values[c.name]} AS VARCHAR), '')" for c in table.columns if c.name not in table.natural_key
    ] + [f"coalesce({attributes}, '')"]
    content = "md5(concat_ws(chr(31), " + ", ".join(parts) + "))"
    key_cols = [c for c in table.natural_key if values.get(c, "NULL") != "NULL"]
    if not table.natural_key or len(key_cols) < len(table.natural_key):
        if table.name == "events":
            values["event_id"] = content
        return content
    if len(key_cols) == 1:
        natural = f"CAST({values[key_cols[0]]} AS VARCHAR)"
    else:
        natural = "concat_ws('|', " + ", ".join(f"CAST({values[c]} AS VARCHAR)" for c in key_cols) + ")"
    if table.name == "events":
        values["event_id"] = f"coalesce({values['event_id']}, {content})"
        return values["event_id"]
    return natural
