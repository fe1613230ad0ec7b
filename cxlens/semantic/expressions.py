"""A small, safe expression language for metric, dimension and segment definitions.

Definitions are written in SQL-like text (`revenue > 100`, `count(*) >= 2`,
`loyalty_member and region = 'North'`), parsed with sqlglot and translated node by node into
Ibis expressions over one table. Only the node kinds listed here exist in the language, so a
definition can never run arbitrary SQL, touch a file or reach another table; the translation
is also what makes the same definition run on DuckDB and on Spark.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ibis
import ibis.expr.types as ir
import sqlglot
from sqlglot import exp

from cxlens.errors import MetricError

AGGREGATES = {"count", "sum", "avg", "mean", "min", "max"}
FUNCTION_NAMES = ("count", "sum", "avg", "min", "max", "abs", "lower", "upper", "length", "round", "floor", "ceil", "ln",
                  "exp", "sqrt", "coalesce", "greatest", "least", "cast")
HELPER_NODES = {"star", "distinct", "datatype", "identifier", "when", "datatypeparam"}
"""Nodes that only appear inside an allowed one (count(*), count(DISTINCT x), CAST … AS type, CASE WHEN)."""


def parse(text: str, where: str = "") -> exp.Expression:
    """Parse one expression, or raise a MetricError naming where it was written."""
    try:
        tree = sqlglot.parse_one(text, read="duckdb")
    except sqlglot.errors.ParseError as exc:
        detail = exc.errors[0]["description"] if exc.errors else str(exc)
        raise MetricError(f"{_at(where)}`{text}` is not a valid expression ({detail}).") from None
    except sqlglot.errors.TokenError:  # e.g. an unclosed quote: the text cannot even be split into tokens
        raise MetricError(f"{_at(where)}`{text}` is not a valid expression (a quote or bracket is not closed).") from None
    if tree is None:
        raise MetricError(f"{_at(where)}`{text}` is empty; write a condition or a formula over columns.")
    for node in tree.walk():
        name = type(node).__name__.lower()
        if not hasattr(_Translator, f"v_{name}") and name not in HELPER_NODES:
            token = node.sql(dialect="duckdb")[:60]
            raise MetricError(f"{_at(where)}`{text}`: `{token}` is not allowed; use columns, literals, comparisons, and/or/not, "
                              f"arithmetic, CASE, IN, BETWEEN, LIKE, IS NULL and functions {', '.join(FUNCTION_NAMES)}.")
    return tree


def columns_of(text: str, where: str = "") -> set[str]:
    """The column names an expression reads."""
    return {c.name for c in parse(text, where).find_all(exp.Column)}


def compile_expr(text: str, table: ir.Table, *, where: str = "", aggregate: bool = False,
                 rows: ir.BooleanValue | None = None) -> ir.Value:
    """Translate `text` into an Ibis expression over `table`.

    `aggregate=True` allows (and is needed for) count/sum/avg/min/max: per-unit formulas. `rows`
    limits every aggregate to the rows where it holds (`count(*)` becomes `count(*) FILTER (WHERE
    rows)`), so one group-by can evaluate a formula over several subsets of a unit's rows.
    """
    return _Translator(table, text, where, aggregate, rows).visit(parse(text, where))


class _Translator:
    def __init__(self, table: ir.Table, text: str, where: str, aggregate: bool, rows: ir.BooleanValue | None = None):
        self.table, self.text, self.where, self.aggregate, self.rows = table, text, where, aggregate, rows

    def fail(self, what: str) -> MetricError:
        return MetricError(f"{_at(self.where)}`{self.text}`: {what}")

    def visit(self, node: exp.Expression) -> Any:
        method = getattr(self, f"v_{type(node).__name__.lower()}", None)
        if method is None:
            token = node.sql(dialect="duckdb")
            raise self.fail(f"`{token}` is not allowed here; use columns, literals, comparisons, and/or/not, "
                            f"arithmetic, CASE, IN, BETWEEN, LIKE, IS NULL and functions {', '.join(FUNCTION_NAMES)}.")
        return method(node)

    # leaves
    def v_column(self, node: exp.Column) -> ir.Value:
        if node.table:
            raise self.fail(f"`{node.sql()}` names a table; write the column name alone.")
        name = node.name
        if name not in self.table.columns:
            raise self.fail(f"there is no column `{name}` here; columns: {', '.join(sorted(self.table.columns))}.")
        return self.table[name]

    def v_literal(self, node: exp.Literal) -> ir.Value:
        if node.is_string:
            return ibis.literal(node.this)
        text = node.this
        return ibis.literal(float(text)) if any(ch in text for ch in ".eE") else ibis.literal(int(text))

    def v_boolean(self, node: exp.Boolean) -> ir.Value:
        return ibis.literal(bool(node.this))

    def v_null(self, node: exp.Null) -> ir.Value:
        return ibis.null()

    def v_paren(self, node: exp.Paren) -> ir.Value:
        return self.visit(node.this)

    # logic and comparison
    def v_and(self, node: exp.And) -> ir.Value:
        return self.visit(node.this) & self.visit(node.expression)

    def v_or(self, node: exp.Or) -> ir.Value:
        return self.visit(node.this) | self.visit(node.expression)

    def v_not(self, node: exp.Not) -> ir.Value:
        return ~self.visit(node.this)

    def _cmp(self, node: exp.Binary, op: Callable[[Any, Any], Any]) -> ir.Value:
        return op(self.visit(node.this), self.visit(node.expression))

    def v_eq(self, node: exp.EQ) -> ir.Value:
        return self._cmp(node, lambda a, b: a == b)

    def v_neq(self, node: exp.NEQ) -> ir.Value:
        return self._cmp(node, lambda a, b: a != b)

    def v_gt(self, node: exp.GT) -> ir.Value:
        return self._cmp(node, lambda a, b: a > b)

    def v_gte(self, node: exp.GTE) -> ir.Value:
        return self._cmp(node, lambda a, b: a >= b)

    def v_lt(self, node: exp.LT) -> ir.Value:
        return self._cmp(node, lambda a, b: a < b)

    def v_lte(self, node: exp.LTE) -> ir.Value:
        return self._cmp(node, lambda a, b: a <= b)

    def v_is(self, node: exp.Is) -> ir.Value:
        if not isinstance(node.expression, exp.Null):
            raise self.fail("IS is only allowed as IS NULL / IS NOT NULL.")
        return self.visit(node.this).isnull()

    def v_in(self, node: exp.In) -> ir.Value:
        if node.args.get("query") is not None:
            raise self.fail("IN takes a list of values, not a query.")
        values = [self.visit(v) for v in node.expressions]
        return self.visit(node.this).isin(values)

    def v_between(self, node: exp.Between) -> ir.Value:
        return self.visit(node.this).between(self.visit(node.args["low"]), self.visit(node.args["high"]))

    def v_like(self, node: exp.Like) -> ir.Value:
        return self.visit(node.this).like(self.visit(node.expression))

    def v_ilike(self, node: exp.ILike) -> ir.Value:
        return self.visit(node.this).ilike(self.visit(node.expression))

    # arithmetic
    def v_add(self, node: exp.Add) -> ir.Value:
        return self._cmp(node, lambda a, b: a + b)

    def v_sub(self, node: exp.Sub) -> ir.Value:
        return self._cmp(node, lambda a, b: a - b)

    def v_mul(self, node: exp.Mul) -> ir.Value:
        return self._cmp(node, lambda a, b: a * b)

    def v_div(self, node: exp.Div) -> ir.Value:
        return self._cmp(node, lambda a, b: a / b)

    def v_neg(self, node: exp.Neg) -> ir.Value:
        return -self.visit(node.this)

    def v_case(self, node: exp.Case) -> ir.Value:
        if node.this is not None:
            raise self.fail("write CASE WHEN condition THEN value … (the searched form).")
        branches = [(self.visit(i.this), self.visit(i.args["true"])) for i in node.args.get("ifs", [])]
        default = node.args.get("default")
        return ibis.cases(*branches, else_=self.visit(default) if default is not None else None)

    def v_if(self, node: exp.If) -> ir.Value:
        return ibis.ifelse(self.visit(node.this), self.visit(node.args["true"]),
                           self.visit(node.args["false"]) if node.args.get("false") is not None else ibis.null())

    def v_coalesce(self, node: exp.Coalesce) -> ir.Value:
        return ibis.coalesce(self.visit(node.this), *[self.visit(e) for e in node.expressions])

    def v_greatest(self, node: exp.Greatest) -> ir.Value:
        return ibis.greatest(self.visit(node.this), *[self.visit(e) for e in node.expressions])

    def v_least(self, node: exp.Least) -> ir.Value:
        return ibis.least(self.visit(node.this), *[self.visit(e) for e in node.expressions])

    def v_cast(self, node: exp.Cast) -> ir.Value:
        target = node.to.sql(dialect="duckdb").lower()
        kinds = {"double": "float64", "float": "float64", "integer": "int64", "int": "int64", "bigint": "int64",
                 "varchar": "string", "text": "string", "boolean": "boolean", "date": "date", "timestamp": "timestamp"}
        if target not in kinds:
            raise self.fail(f"cannot cast to {target}; use one of {', '.join(sorted(kinds))}.")
        return self.visit(node.this).cast(kinds[target])

    # functions
    def _agg(self, node: exp.Expression, name: str) -> ir.Value:
        if not self.aggregate:
            raise self.fail(f"{name}() is an aggregate; it is only allowed in a per-unit formula (a measure with `unit:`).")
        arg, rows = node.this, self.rows
        if name == "count":
            if isinstance(arg, exp.Star) or arg is None:
                return self.table.count(where=rows)
            if isinstance(arg, exp.Distinct):
                return self.visit(arg.expressions[0]).nunique(where=rows)
            return self.visit(arg).count(where=rows)
        value = self.visit(arg)
        return {"sum": value.sum, "avg": value.mean, "min": value.min, "max": value.max}[name](where=rows)

    def v_count(self, node: exp.Count) -> ir.Value:
        return self._agg(node, "count")

    def v_sum(self, node: exp.Sum) -> ir.Value:
        return self._agg(node, "sum")

    def v_avg(self, node: exp.Avg) -> ir.Value:
        return self._agg(node, "avg")

    def v_min(self, node: exp.Min) -> ir.Value:
        return self._agg(node, "min")

    def v_max(self, node: exp.Max) -> ir.Value:
        return self._agg(node, "max")

    def v_abs(self, node: exp.Abs) -> ir.Value:
        return self.visit(node.this).abs()

    def v_lower(self, node: exp.Lower) -> ir.Value:
        return self.visit(node.this).lower()

    def v_upper(self, node: exp.Upper) -> ir.Value:
        return self.visit(node.this).upper()

    def v_length(self, node: exp.Length) -> ir.Value:
        return self.visit(node.this).length()

    def v_round(self, node: exp.Round) -> ir.Value:
        digits = node.args.get("decimals")
        return self.visit(node.this).round(int(digits.this) if digits is not None else None)

    def v_floor(self, node: exp.Floor) -> ir.Value:
        return self.visit(node.this).floor()

    def v_ceil(self, node: exp.Ceil) -> ir.Value:
        return self.visit(node.this).ceil()

    def v_ln(self, node: exp.Ln) -> ir.Value:
        return self.visit(node.this).ln()

    def v_exp(self, node: exp.Exp) -> ir.Value:
        return self.visit(node.this).exp()

    def v_sqrt(self, node: exp.Sqrt) -> ir.Value:
        return self.visit(node.this).sqrt()

    def v_anonymous(self, node: exp.Anonymous) -> ir.Value:
        name = str(node.this).lower()
        if name == "mean":
            return self._agg(exp.Avg(this=node.expressions[0]), "avg")
        raise self.fail(f"unknown function `{node.this}`; functions: {', '.join(FUNCTION_NAMES)}.")


def _at(where: str) -> str:
    return f"{where}: " if where else ""
