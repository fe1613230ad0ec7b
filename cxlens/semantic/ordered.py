"""First and last values by an ordering, written with row_number so every engine runs them.

Ordered aggregates (`FIRST(x ORDER BY t)`) exist in DuckDB but not in Ibis's PySpark backend;
a row_number window and a filter say the same thing portably.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir


def first_rows(t: ir.Table, group: str, order: list[str], *, last: bool = False) -> ir.Table:
    """The first (or last) row of each group by `order`, ties broken by the later keys of `order`."""
    keys = [ibis.desc(t[c]) if last else t[c] for c in order]
    ranked = t.mutate(_rn=ibis.row_number().over(group_by=t[group], order_by=keys))
    return ranked.filter(ranked._rn == 0).drop("_rn")


def first_values(t: ir.Table, group: str, columns: dict[str, str], order: list[str], *, last: bool = False,
                 skip_null: bool = False) -> ir.Table:
    """(group, name...) holding each group's first (or last) value of the given columns.

    With `skip_null`, rows where the (single) column is NULL are left out first, so the result is
    the first non-null value.
    """
    if skip_null:
        t = t.filter(ibis.and_(*[t[c].notnull() for c in columns.values()]))
    rows = first_rows(t, group, order, last=last)
    return rows.select(rows[group], **{name: rows[col] for name, col in columns.items()})
