"""Rendering command results as a Rich table or as JSON (`--format table|json`)."""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


class Format(str, enum.Enum):
    table = "table"
    json = "json"


def _default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, Mapping):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def dict_rows(cursor: Any) -> list[dict[str, Any]]:
    """A DuckDB cursor's result as a list of {column: value} rows."""
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r)) for r in cursor.fetchall()]


def json_text(obj: Any) -> str:
    """The `--format json` text of `obj` (NaN becomes null, dates ISO 8601); the HTTP read API answers
    with the same text, so scripts can switch between the CLI and the service."""
    return json.dumps(_clean(obj), default=_default, ensure_ascii=False)


def print_json(obj: Any) -> None:
    """One JSON document on stdout."""
    print(json_text(obj))


def print_rows(rows: Sequence[Mapping[str, Any]], *, title: str | None = None, columns: Iterable[str] | None = None) -> None:
    """A Rich table of dict rows."""
    cols = list(columns) if columns is not None else (list(rows[0].keys()) if rows else [])
    table = Table(title=title, show_lines=False)
    for c in cols:
        numeric = bool(rows) and isinstance(rows[0].get(c), (int, float))
        table.add_column(c, justify="right" if numeric else "left")
    for r in rows:
        table.add_row(*[_fmt(r.get(c)) for c in cols])
    console.print(table)


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S")
    return str(v)


def print_error(message: str) -> None:
    err_console.print(f"[bold red]Error:[/] {message}", highlight=False, soft_wrap=True)
