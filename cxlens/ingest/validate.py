"""Row validation compiled to SQL: each canonical column becomes a parsed value and a check.

The checks run in the engine over the whole staging table at once. A row's problem is the first
failing column in canonical column order (required, then type, then allowed values and scales),
so every quarantined row carries exactly one reason code from `workspace.internal.REASONS`.
"""

from __future__ import annotations

from dataclasses import dataclass

from cxlens.workspace.schema import ENUMS, SURVEY_SCALES, Column

TRUE_WORDS = ("true", "t", "yes", "y", "1")
FALSE_WORDS = ("false", "f", "no", "n", "0")


def q(name: str) -> str:
    """Quote an identifier for DuckDB."""
    return '"' + name.replace('"', '""') + '"'


def lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class ColumnSQL:
    """SQL for one canonical column: its raw text, parsed value and failure condition."""

    name: str
    raw: str
    value: str
    checks: tuple[tuple[str, str], ...]
    """(condition that means failure, reason code), in the order they are tried."""


def iso_timestamp(text: str) -> str:
    """ISO 8601 text to a UTC TIMESTAMP.

    A cast to TIMESTAMP ignores a UTC offset, so text ending in 'Z', or with a '+' or a '-' after
    the time's first ':' (an offset, also in unpadded forms like '2025-1-1 1:0:0-05'), goes
    through TIMESTAMPTZ (4x slower), the rest through the fast TIMESTAMP cast.
    The zone test costs more than the cast, so the common 'YYYY-MM-DD HH:MM:SS' shape (19
    characters, ':' at 14 and 17, a digit last), which has no room for a zone, skips it: one GLOB.
    """
    plain = f"{text} GLOB '?????????????:??:?[0-9]'"
    after_time = f"substr({text}, strpos({text}, ':'))"
    has_zone = (f"(NOT {plain} AND (suffix({text}, 'Z') OR contains({text}, '+') "
                f"OR (strpos({text}, ':') > 0 AND contains({after_time}, '-'))))")
    return (
        f"CASE WHEN {has_zone} THEN CAST(TRY_CAST({text} AS TIMESTAMPTZ) AS TIMESTAMP) "
        f"ELSE TRY_CAST({text} AS TIMESTAMP) END"
    )


def _inlist(expr: str, words: tuple[str, ...]) -> str:
    return f"{expr} IN ({', '.join(lit(w) for w in words)})"


def column_sql(col: Column, raw: str, fmt: str | None) -> ColumnSQL:
    """Parse `raw` (a VARCHAR SQL expression) as `col`'s type.

    trim() copies every string (a quarter of a 10M-row file's parse time when called on each
    value), and it only strips spaces, so it is called only on values that start or end with one.
    """
    blank = f"({raw} IS NULL OR {raw} = '' OR (prefix({raw}, ' ') AND trim({raw}) = ''))"
    text = f"(CASE WHEN prefix({raw}, ' ') OR suffix({raw}, ' ') THEN NULLIF(trim({raw}), '') ELSE NULLIF({raw}, '') END)"
    checks: list[tuple[str, str]] = []
    if col.required:
        checks.append((blank, "missing_required"))
    if col.type == "string":
        value = f"NULLIF({raw}, '')" if col.enum is None else f"lower({text})"
        if col.enum:
            checks.append((f"NOT {blank} AND NOT {_inlist(f'lower({text})', ENUMS[col.enum])}", "unknown_value"))
        if col.name == "survey_type":
            value = f"lower({text})"
    elif col.type == "float64":
        value = f"TRY_CAST({text} AS DOUBLE)"
        checks.append((f"NOT {blank} AND {value} IS NULL", "bad_number"))
    elif col.type == "int64":
        as_double = f"TRY_CAST({text} AS DOUBLE)"
        value = f"CASE WHEN {as_double} = round({as_double}) THEN CAST({as_double} AS BIGINT) END"
        checks.append((f"NOT {blank} AND {value} IS NULL", "bad_integer"))
    elif col.type == "boolean":
        low = f"lower({text})"
        value = f"CASE WHEN {_inlist(low, TRUE_WORDS)} THEN true WHEN {_inlist(low, FALSE_WORDS)} THEN false END"
        checks.append((f"NOT {blank} AND {value} IS NULL", "bad_boolean"))
    elif col.type == "timestamp":
        if fmt:
            value = f"CAST(try_strptime({text}, {lit(fmt)}) AS TIMESTAMP)"
        else:
            value = iso_timestamp(text)
        checks.append((f"NOT {blank} AND {value} IS NULL", "bad_timestamp"))
    elif col.type == "date":
        if fmt:
            value = f"CAST(try_strptime({text}, {lit(fmt)}) AS DATE)"
        else:
            value = f"COALESCE(TRY_CAST({text} AS DATE), CAST(TRY_CAST({text} AS TIMESTAMP) AS DATE))"
        checks.append((f"NOT {blank} AND {value} IS NULL", "bad_date"))
    elif col.type == "json":
        value = f"CASE WHEN json_valid({text}) THEN {text} END"
        checks.append((f"NOT {blank} AND NOT json_valid({text})", "bad_json"))
    else:  # pragma: no cover - schema types are closed
        raise ValueError(col.type)
    return ColumnSQL(col.name, raw, value, tuple(checks))


def score_scale_check(score_value: str, type_value: str) -> str:
    """Failure condition for a survey score outside its type's scale."""
    parts = [f"({type_value} = {lit(t)} AND ({score_value} < {lo} OR {score_value} > {hi}))" for t, (lo, hi) in SURVEY_SCALES.items()]
    return f"({score_value} IS NOT NULL AND ({' OR '.join(parts)}))"
