"""Experiment units from the workspace: who was assigned to what, and when they were first exposed.

A unit is a resolved profile (the assignment's ``unit_id`` — a customer or anonymous id — went
through identity resolution at ingest). Its exposure starts at its first assignment; a unit found
in more than one variant is a crossover and is left out (its outcome belongs to neither arm),
with a warning that counts them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ibis
import ibis.expr.types as ir

from cxlens.errors import NotFoundError

CONTROL_NAMES = ("control", "holdout", "no_personalization", "no personalization", "generic", "baseline", "none", "a")
"""Variant names taken as the control when --control is not given, in this order of preference."""


@dataclass(frozen=True)
class Units:
    """One row per unit: ``unit`` (profile id), ``variant`` and ``start`` (first assignment)."""

    table: ir.Table
    materialized: ir.Table
    """The cached per-unit table ``table`` reads from; ``release()`` it when done."""
    counts: dict[str, int]
    crossovers: int
    span: tuple[Any, Any] = (None, None)
    """First and last exposure start (crossovers included): rows outside every window are pruned."""

    def release(self) -> None:
        self.materialized.release()


def experiments(ws: Any) -> list[dict[str, Any]]:
    """Every experiment in `assignments`: its variants with unit counts and its assignment dates."""
    a = ws.table("assignments")
    per_variant = (
        a.group_by(["experiment_id", "variant"])
        .aggregate(units=a.profile_id.nunique(), first=a.assigned_at.min(), last=a.assigned_at.max())
        .order_by(["experiment_id", "variant"])
        .to_pyarrow()
        .to_pylist()
    )
    out: dict[str, dict[str, Any]] = {}
    for row in per_variant:
        e = out.setdefault(
            row["experiment_id"],
            {"experiment_id": row["experiment_id"], "variants": {}, "units": 0, "first_assigned_at": row["first"],
             "last_assigned_at": row["last"]},
        )
        e["variants"][row["variant"]] = row["units"]
        e["units"] += row["units"]
        e["first_assigned_at"] = min(e["first_assigned_at"], row["first"])
        e["last_assigned_at"] = max(e["last_assigned_at"], row["last"])
    for e in out.values():
        e["control"] = guess_control(list(e["variants"]))
    return list(out.values())


def guess_control(variants: list[str]) -> str | None:
    lowered = {v.lower(): v for v in variants}
    return next((lowered[name] for name in CONTROL_NAMES if name in lowered), None)


def experiment_units(ws: Any, experiment_id: str) -> Units:
    """The units of one experiment with their variant and exposure start (crossovers removed).

    The per-unit table is materialized (it is read once per metric source); call ``release()``.
    """
    a = ws.table("assignments")
    a = a.filter((a.experiment_id == experiment_id) & a.profile_id.notnull())
    # A unit in one variant has min = max; a crossover (min != max) is left out, so its first
    # variant is never needed and no ordered aggregate has to run.
    per_unit = a.group_by(unit=a.profile_id).aggregate(
        variant=a.variant.min(), start=a.assigned_at.min(), crossed=a.variant.min() != a.variant.max()
    ).cache()
    counts = per_unit.group_by("variant").aggregate(units=ibis._.count(), crossed=ibis._.crossed.sum(),
                                                    first=ibis._.start.min(), last=ibis._.start.max())
    rows = counts.order_by("variant").to_pyarrow().to_pylist()
    if not rows:
        per_unit.release()
        known = sorted({r["experiment_id"] for r in experiments(ws)})
        raise NotFoundError(
            f"No assignments for experiment {experiment_id!r}; experiments in this workspace: "
            f"{', '.join(map(repr, known)) or 'none (ingest an assignments file first)'}."
        )
    crossovers = sum(int(r["crossed"] or 0) for r in rows)
    clean = per_unit.filter(~per_unit.crossed).drop("crossed")
    counts_by_variant: dict[str, int] = {}
    for r in rows:
        # A crossover is counted under its alphabetically first variant above; take it out there.
        counts_by_variant[r["variant"]] = int(r["units"]) - int(r["crossed"] or 0)
    span = (min(r["first"] for r in rows), max(r["last"] for r in rows))
    return Units(clean, per_unit, counts_by_variant, crossovers, span)
