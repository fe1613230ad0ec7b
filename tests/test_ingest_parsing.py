"""The validation SQL's fast forms (trim only when a space is at an edge, a zone test skipped for
the plain 'YYYY-MM-DD HH:MM:SS' shape) against the plain definitions they replace, which DuckDB
evaluates directly: same text, same blank verdict, same UTC timestamp for every input."""

from __future__ import annotations

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cxlens.ingest.validate import column_sql, iso_timestamp
from cxlens.workspace.schema import TABLES

TRICKY = [
    None, "", " ", "   ", " a", "a ", " a ", "\t", "\t1.5", "1.5", " 1.5 ",
    "2025-01-01 10:00:00", " 2025-01-01 10:00:00 ", "2025-01-01T10:00:00Z", "2025-01-01 10:00:00+02",
    "2025-01-01 10:00:00-05:00", "2025-01-01T10:00:00.123+0530", "2025-01-01 10:00+02:00", "2025-01-01 10:00Z",
    "2025-01-01 10:00-0500", "2025-01-01", " 2025-01-01 ", "2025-1-1 1:00+05:30", "2025-01-01 10:00:0Z",
    "2025-1-1 1:00:00+02", "2025-1-1 1:0:0-05", "2025-1-1T1:00:00-05", "2025-01-01 1:00:00Z", "2025-01-01 10:00:00 ", "2025-13-01 10:00:00", "not a date", "2025-01-01 10:00:60",
]


def _con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def _check(values: list[str | None]) -> None:
    col = next(c for c in TABLES["events"].columns if c.name == "occurred_at")
    spec = column_sql(col, "x", None)
    blank, _ = spec.checks[0]
    text = "NULLIF(trim(x), '')"
    con = _con()
    con.execute("CREATE TABLE t (i INTEGER, x VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?)", list(enumerate(values)))
    rows = con.execute(
        f"SELECT i, x, {spec.value} = CAST(TRY_CAST({text} AS TIMESTAMPTZ) AS TIMESTAMP) "
        f"OR ({spec.value} IS NULL AND TRY_CAST({text} AS TIMESTAMPTZ) IS NULL), "
        f"{blank} = (x IS NULL OR trim(x) = '') FROM t ORDER BY i"
    ).fetchall()
    for _, x, same_time, same_blank in rows:
        assert same_time, f"timestamp differs for {x!r}"
        assert same_blank, f"blank verdict differs for {x!r}"


def test_fast_forms_equal_the_plain_definitions_on_tricky_values() -> None:
    _check(TRICKY)


def test_text_form_equals_nullif_trim() -> None:
    col = next(c for c in TABLES["events"].columns if c.name == "value")
    spec = column_sql(col, "x", None)
    con = _con()
    for x in TRICKY:
        got, want = con.execute(
            f"SELECT {spec.value}, TRY_CAST(NULLIF(trim(x), '') AS DOUBLE) FROM (SELECT CAST(? AS VARCHAR) AS x)", [x]
        ).fetchone()
        assert got == want, x


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet="0123456789 -:+TZ.", max_size=26), min_size=1, max_size=40))
def test_fast_forms_equal_the_plain_definitions_on_generated_values(values: list[str]) -> None:
    _check(values)


@pytest.mark.parametrize("text, utc", [
    ("2025-01-01 10:00:00+02", "2025-01-01 08:00:00"),
    ("2025-01-01T10:00:00Z", "2025-01-01 10:00:00"),
    ("2025-01-01 10:00:00-05:00", "2025-01-01 15:00:00"),
    ("2025-01-01 10:00:00", "2025-01-01 10:00:00"),
    ("2025-1-1 1:00:00+02", "2024-12-31 23:00:00"),
    ("2025-1-1 1:0:0-05", "2025-01-01 06:00:00"),
])
def test_offsets_are_converted_to_utc(text: str, utc: str) -> None:
    got = _con().execute(f"SELECT CAST({iso_timestamp('x')} AS VARCHAR) FROM (SELECT ? AS x)", [text]).fetchone()[0]
    assert got == utc
