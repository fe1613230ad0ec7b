"""Journey stages: personalized vs generic touches and the share followed by an order (observational)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ibis

from cxlens.errors import UsageError
from cxlens.experiments.roi.common import (
    INTERACTION,
    JOURNEY_STAGES,
    LANDING,
    number,
    ratio_sums,
    sums_of,
    valid_orders_of,
)
from cxlens.stats.effects import estimate_effects


@dataclass
class StageReport:
    """Per journey stage: touches by personalized/generic/untagged and the order-follow-up comparison."""

    stages: list[dict[str, Any]]
    days: float
    alpha: float
    mapping: dict[str, list[str]]

    def to_json(self) -> dict[str, Any]:
        return {"stages": self.stages, "days": self.days, "alpha": self.alpha, "mapping": self.mapping,
                "outcome": f"share of touches followed by a valid order of the same person within {self.days:g} days"}


def stage_report(ws: Any, *, days: float = 7, alpha: float = 0.05) -> StageReport:
    """Personalized vs generic touches per journey stage, and how often each is followed by an order.

    A touch is converted when the same person places a valid order within ``days`` after it;
    the rate is converted touches / touches with the person as the unit (delta method). Only
    touches that carry `events.personalized` are compared (messages and recommendations in
    most data), and the comparison is observational: who gets personalized touches is not random.
    """
    if days <= 0:
        raise UsageError(f"--days must be > 0, got {days}.")
    e = ws.table("events")
    landing = (e.event_type == "page_view") & (e.referrer.notnull() | e.utm_source.notnull() | e.utm_campaign.notnull())
    plain = {stage: [t for t in types if t not in (LANDING, INTERACTION)] for stage, types in JOURNEY_STAGES.items()}
    rules = [(landing, "awareness")] + [(e.event_type.isin(types), stage) for stage, types in plain.items() if types]
    label = ibis.cases((e.personalized == True, "personalized"), (e.personalized == False, "generic"),
                       else_="untagged")
    ev = e.select(pid=e.profile_id, ts=e.occurred_at, stage=ibis.cases(*rules, else_="other"), label=label)
    i = ws.table("interactions")
    it = i.select(pid=i.profile_id, ts=i.started_at, stage=ibis.literal("service"), label=ibis.literal("untagged"))
    touches = ibis.union(ev, it)
    counts = touches.group_by(["stage", "label"]).aggregate(touches=touches.count()).to_pyarrow().to_pandas()

    o = valid_orders_of(ws)
    tagged = touches.filter(touches.pid.notnull() & (touches.label != "untagged"))
    line = ibis.union(
        tagged.mutate(kind=ibis.literal(0)),
        o.select(pid=o.profile_id, ts=o.ordered_at, stage=ibis.null("string"), label=ibis.null("string"),
                 kind=ibis.literal(1)),
    )
    w = ibis.window(group_by=line.pid, order_by=[line.ts, line.kind], preceding=0, following=None)
    line = line.mutate(next_order=ibis.ifelse(line.kind == 1, line.ts, ibis.null("timestamp")).min().over(w))
    line = line.filter(line.kind == 0)
    within = line.next_order <= line.ts + ibis.interval(seconds=int(days * 86400))
    line = line.mutate(hit=(line.next_order.notnull() & within).cast("float64"), one=ibis.literal(1.0))
    sums = ratio_sums(line.rename(unit="pid", click="hit", send="one"), ["stage", "label"]).set_index(["stage", "label"])

    out = []
    for stage in [*JOURNEY_STAGES, "other"]:
        mine = counts[counts.stage == stage].set_index("label")
        if stage == "other" and mine.empty:
            continue
        row: dict[str, Any] = {"stage": stage, "event_types": list(JOURNEY_STAGES.get(stage, ()))}
        row["touches"] = {lab: int(mine.touches.get(lab, 0)) for lab in ("personalized", "generic", "untagged")}
        rates = {}
        for lab in ("personalized", "generic"):
            s = sums.loc[(stage, lab)] if (stage, lab) in sums.index else None
            rates[lab] = {"people": int(s.n) if s is not None else 0,
                          "rate": number(s.sum_y / s.sum_d) if s is not None and s.sum_d else None}
        row["conversion"] = rates
        if rates["personalized"]["people"] == 0 or rates["generic"]["people"] == 0:
            side = "personalized" if rates["personalized"]["people"] == 0 else "generic"
            row["effect"], row["code"] = None, f"no_{side}_touches"
        else:
            rec = estimate_effects(sums_of([sums.loc[(stage, "generic")]]), sums_of([sums.loc[(stage, "personalized")]]),
                                   kind="ratio", alpha=alpha).records()[0]
            row["effect"] = {k: number(rec[k]) for k in ("abs_effect", "ci_low", "ci_high", "rel_effect", "rel_ci_low",
                                                        "rel_ci_high", "p_value")}
            row["code"] = rec["code"]
        out.append(row)
    return StageReport(stages=out, days=days, alpha=alpha, mapping={k: list(v) for k, v in JOURNEY_STAGES.items()})
