"""Personalization ROI: what personalization earned against what the cost ledger says it cost.

Three views, each computed from aggregates the engine returns (per-variant sufficient statistics,
per-person sums, per-campaign costs):

- :func:`experiment_roi` — **randomized**. Per-unit effects of a personalization experiment (buyers,
  orders, revenue, margin; :func:`cxlens.experiments.workspace.analyze_experiment`, CUPED by
  default) times the treated units give incremental totals with intervals; ROI =
  (incremental margin − cost) / cost, cost = personalization costs booked over the experiment.
- :func:`content_roi` — per content piece (``events.content_id``): clicks per send of personalized
  content against generic content, the incremental clicks, what a click is worth, the content's
  personalization cost, ROI, and a flag on content that does not pay. **Observational** unless
  the content itself was randomized (a content with personalized and generic sends is compared
  within itself).
- :func:`stage_report` — per journey stage (:data:`JOURNEY_STAGES`): personalized vs generic
  touches and the share of touches followed by an order. **Observational**.

Every ROI interval treats the cost as known: its only uncertainty is the incremental margin's
(and, for content, the value of a click's). Degenerate inputs give a ``code``, never an exception
or a NaN.
"""

from __future__ import annotations

from cxlens.experiments.roi.common import COST_KIND, JOURNEY_STAGES, MARGIN, judge
from cxlens.experiments.roi.content import ContentRoiResult, content_roi
from cxlens.experiments.roi.experiment import (
    RoiResult,
    experiment_roi,
    personalization_costs,
)
from cxlens.experiments.roi.stages import StageReport, stage_report

__all__ = [
    "COST_KIND",
    "JOURNEY_STAGES",
    "MARGIN",
    "ContentRoiResult",
    "RoiResult",
    "StageReport",
    "content_roi",
    "experiment_roi",
    "judge",
    "personalization_costs",
    "stage_report",
]
