"""Checking mapping expressions before the engine sees them.

An `expr` or `filters` value is SQL evaluated by the engine over the source row only: no
sub-queries, no table or file functions, no functions the engine does not know. Anything else is
refused with the offending token named.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from cxlens.errors import MappingError

FORBIDDEN_NODES: tuple[type[exp.Expression], ...] = (
    exp.Subquery, exp.Table, exp.Join, exp.Union, exp.Command, exp.Create, exp.Insert,
    exp.Delete, exp.Update, exp.Drop, exp.Pragma, exp.Star, exp.Window,
)
FORBIDDEN_FUNCTION_PREFIXES = ("read_", "glob", "parquet_", "sniff_", "query", "getenv", "current_setting", "pragma_")
ALLOWED_ANONYMOUS = {
    "regexp_extract", "regexp_replace", "regexp_matches", "strptime", "try_strptime", "strftime",
    "split_part", "md5", "sha256", "hash", "nullif", "coalesce", "lpad", "rpad", "trim", "ltrim",
    "rtrim", "lower", "upper", "replace", "concat_ws", "left", "right", "try_cast", "epoch_ms",
    "to_timestamp", "make_date", "make_timestamp", "date_trunc", "round", "floor", "ceil", "abs",
    "greatest", "least", "starts_with", "ends_with", "contains", "length", "strip_accents",
    "json_extract_string", "json_extract", "list_element", "string_split", "array_extract", "ifnull",
}


NUMERIC_PARENTS = (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod, exp.IntDiv, exp.Neg, exp.Round, exp.Abs,
                   exp.Floor, exp.Ceil, exp.Sqrt, exp.Ln, exp.Log, exp.Pow, exp.Exp)
COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)


@dataclass(frozen=True)
class CheckedExpression:
    """A mapping expression that passed the checks, rewritten so text columns work as numbers."""

    sql: str
    columns: frozenset[str]
    numeric: frozenset[str]
    """Columns used as numbers: read with TRY_CAST, and a value that is not a number is quarantined."""


def _numeric_context(node: exp.Column) -> bool:
    parent = node.parent
    while isinstance(parent, exp.Paren):
        parent = parent.parent
    if isinstance(parent, NUMERIC_PARENTS):
        return True
    if isinstance(parent, COMPARISONS):
        other = parent.expression if parent.this is node else parent.this
        return (isinstance(other, exp.Literal) and other.is_number) or isinstance(other, NUMERIC_PARENTS) or (
            isinstance(other, exp.Neg)
        )
    if isinstance(parent, exp.Between):
        return any(isinstance(x, exp.Literal) and x.is_number for x in (parent.args.get("low"), parent.args.get("high")))
    return False


def checked_expression(text: str, columns: list[str], *, where: str, what: str) -> CheckedExpression:
    """Check `text` and type its columns by use: a column in arithmetic or compared with a number
    is read as a number (CSV columns are text until then), everywhere else as text."""
    used = check_expression(text, columns, where=where, what=what)
    tree = sqlglot.parse_one(f"SELECT {text}", read="duckdb").expressions[0]
    by_lower = {c.lower(): c for c in columns}
    numeric: set[str] = set()

    def rewrite(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column) and _numeric_context(node):
            name = by_lower[node.name.lower()]
            numeric.add(name)
            return sqlglot.parse_one(f"TRY_CAST(NULLIF(trim(CAST({_quote(name)} AS VARCHAR)), '') AS DOUBLE)", read="duckdb")
        if isinstance(node, exp.Column):
            return exp.column(exp.to_identifier(by_lower[node.name.lower()], quoted=True))
        return node

    out = tree.transform(rewrite, copy=True)
    return CheckedExpression(out.sql(dialect="duckdb"), frozenset(used), frozenset(numeric))


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def check_expression(text: str, columns: list[str], *, where: str, what: str) -> set[str]:
    """Return the source columns `text` uses; raise MappingError naming any forbidden token."""
    try:
        statements = sqlglot.parse(f"SELECT {text}", read="duckdb")
    except sqlglot.errors.ParseError as exc:
        raise MappingError(f"In {where}, {what} `{text}` is not a valid SQL expression ({_first_line(exc)}).") from None
    if len(statements) != 1 or statements[0] is None:
        raise MappingError(f"In {where}, {what} `{text}` must be a single expression (found `;`).")
    select = statements[0]
    if not isinstance(select, exp.Select) or len(select.expressions) != 1 or select.args.get("from_") or select.args.get("from"):
        raise MappingError(f"In {where}, {what} `{text}` must be one expression over source columns.")
    by_lower = {c.lower(): c for c in columns}
    used: set[str] = set()
    root = select.expressions[0]
    for node in root.walk():
        if isinstance(node, FORBIDDEN_NODES) or (isinstance(node, exp.Select) and node is not select):
            token = node.sql(dialect="duckdb")[:60]
            raise MappingError(
                f"In {where}, {what} `{text}` uses `{token}`: only expressions over the source row are "
                "allowed (no sub-queries, tables, windows or *)."
            )
        if isinstance(node, exp.Func):
            name = _function_name(node)
            if name.startswith(FORBIDDEN_FUNCTION_PREFIXES) or isinstance(node, (exp.ReadCSV,)):
                raise MappingError(f"In {where}, {what} `{text}` calls `{name}`, which touches files or settings and is not allowed.")
            if isinstance(node, exp.Anonymous) and name not in ALLOWED_ANONYMOUS:
                raise MappingError(f"In {where}, {what} `{text}` calls the unknown function `{name}`.")
        if isinstance(node, exp.Column):
            if node.table:
                raise MappingError(f"In {where}, {what} `{text}` refers to `{node.sql()}`; name source columns without a table.")
            name = node.name
            if name.lower() not in by_lower:
                raise MappingError(
                    f"In {where}, {what} `{text}` uses `{name}`, which is not a column of the file "
                    f"(columns: {', '.join(columns)})."
                )
            used.add(by_lower[name.lower()])
    return used


def _function_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    return node.sql_name().lower()


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0][:120]
