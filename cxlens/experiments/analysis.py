"""Turn per-cell sufficient statistics of an experiment into results, checks and verdicts.

The same step serves a per-unit flat file and the workspace: both produce one row per
(metric, variant[, segment]) with the aggregate columns of :func:`cxlens.stats.sums.column_names`,
plus the number of units per variant. This module pairs every variant with the control, runs the
effects engine once per metric (vectorized over variants and segments), checks the sample ratio,
corrects p-values for multiple testing across everything analyzed, and says what to do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from cxlens.errors import UsageError
from cxlens.stats.effects import MetricKind, estimate_effects
from cxlens.stats.multiple import adjust_p_values
from cxlens.stats.srm import SampleRatioCheck, srm_check
from cxlens.stats.sums import Sums, column_names

Correction = Literal["holm", "bh", "none"]
Verdict = Literal["ship", "harmful", "inconclusive", "invalid", "no_result"]

VARIABLES: dict[tuple[str, bool], tuple[str, ...]] = {
    ("mean", False): ("y",),
    ("proportion", False): ("y",),
    ("ratio", False): ("y", "d"),
    ("mean", True): ("y", "x"),
    ("proportion", True): ("y", "x"),
    ("ratio", True): ("y", "d", "x", "e"),
}
"""The per-unit variables a metric kind needs, without and with a CUPED covariate."""


@dataclass(frozen=True)
class MetricSpec:
    """What the analysis needs to know about one metric."""

    id: str
    kind: MetricKind
    cuped: bool = False
    higher_is_better: bool = True
    label: str | None = None
    scale: float = 1.0
    """Multiplier for means and absolute effects (100 turns an NPS of +1/0/-1 codes into points)."""


@dataclass(frozen=True)
class Settings:
    alpha: float = 0.05
    sequential: bool = False
    correction: Correction = "holm"
    srm_threshold: float = 0.001
    weights: Mapping[str, float] | None = None


DEFAULT_SETTINGS = Settings()


@dataclass
class Analysis:
    """Everything one analysis found: the sample-ratio check, one result per cell, and warnings."""

    control: str
    units: dict[str, int]
    srm: SampleRatioCheck
    results: list[dict[str, Any]]
    settings: Settings
    by: str | None = None
    warnings: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON contract: ``srm_p_value`` and ``results`` first, then the details."""
        return {
            "srm_p_value": self.srm.p_value,
            "results": self.results,
            "control": self.control,
            "units": self.units,
            "srm": self.srm.to_dict(),
            "alpha": self.settings.alpha,
            "sequential": self.settings.sequential,
            "correction": self.settings.correction,
            "by": self.by,
            "warnings": self.warnings,
            **self.extra,
        }


def analyze_cells(
    cells: pd.DataFrame,
    metrics: Sequence[MetricSpec],
    *,
    control: str,
    units: Mapping[str, int],
    settings: Settings = DEFAULT_SETTINGS,
    by: str | None = None,
) -> Analysis:
    """Results for every metric × non-control variant (× segment value when ``by`` is given).

    ``cells`` has columns ``metric``, ``variant``, the segment column named ``by`` (if any) and
    the aggregate columns; ``units`` counts units per variant for the sample-ratio check.
    """
    variants = list(units)
    if control not in units:
        raise UsageError(f"The control variant {control!r} has no units; variants are: {', '.join(map(repr, variants)) or 'none'}.")
    srm = srm_check({v: int(units[v]) for v in variants}, settings.weights, threshold=settings.srm_threshold)
    results: list[dict[str, Any]] = []
    for spec in metrics:
        results.extend(_metric_results(cells, spec, control, variants, settings, by))
    adjusted = (
        adjust_p_values([r["p_value"] for r in results], settings.correction)
        if settings.correction != "none"
        else [r["p_value"] for r in results]
    )
    for r, p in zip(results, adjusted):
        r["adjusted_p_value"] = p
        r["verdict"] = _verdict(r, p, settings.alpha, srm.mismatch)
    warnings = [srm.message] if srm.message else []
    return Analysis(control=control, units=dict(units), srm=srm, results=results, settings=settings, by=by, warnings=warnings)


def _metric_results(
    cells: pd.DataFrame, spec: MetricSpec, control: str, variants: list[str], settings: Settings, by: str | None
) -> list[dict[str, Any]]:
    rows = cells[cells["metric"] == spec.id]
    segments: list[Any] = sorted(rows[by].dropna().unique().tolist(), key=str) if by else [None]
    treatments = [v for v in variants if v != control]
    pairs = [(v, s) for s in segments for v in treatments]
    if not pairs:
        return []
    names = VARIABLES[(spec.kind, spec.cuped)]
    table = rows.set_index(["variant", by] if by else ["variant"])

    def gather(keys: list[tuple[str, Any]]) -> Sums:
        index = [(v, s) if by else v for v, s in keys]
        found = table.reindex(index)
        columns = {c: found[c].to_numpy(dtype=np.float64) if c in found else np.zeros(len(keys)) for c in column_names(names)}
        columns["n"] = np.nan_to_num(columns["n"])
        return Sums.from_columns(columns, names)

    effects = estimate_effects(
        gather([(control, s) for _, s in pairs]),
        gather(pairs),
        kind=spec.kind,
        cuped=spec.cuped,
        alpha=settings.alpha,
        higher_is_better=spec.higher_is_better,
        sequential=settings.sequential,
    )
    out = []
    for (variant, segment), record in zip(pairs, effects.records()):
        row: dict[str, Any] = {"metric": spec.id, "variant": variant}
        if by:
            row[by] = segment
        for key in ("mean", "control_mean", "abs_effect", "ci_low", "ci_high"):
            if record[key] is not None:
                record[key] = float(record[key]) * spec.scale  # type: ignore[arg-type]
        row.update(record)
        row["kind"] = spec.kind
        row["cuped"] = spec.cuped
        out.append(row)
    return out


def _verdict(result: dict[str, Any], p: float | None, alpha: float, srm_mismatch: bool) -> Verdict:
    """ship / harmful when the corrected test is significant, else inconclusive; SRM blocks both."""
    if srm_mismatch:
        return "invalid"
    if result["code"] not in ("ok", "zero_control_mean", "zero_variance") or p is None:
        return "no_result"
    if p >= alpha:
        return "inconclusive"
    chance = result["chance_to_win"]
    return "ship" if chance is not None and chance > 0.5 else "harmful"


def check_alpha(alpha: float) -> float:
    if not 0 < alpha < 0.5:
        raise UsageError(f"--alpha must be between 0 and 0.5 (0.05 gives 95% intervals), got {alpha}.")
    return alpha
