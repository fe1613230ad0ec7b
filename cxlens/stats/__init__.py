"""Statistics from sufficient statistics: periods compared, experiment effects, SRM, corrections, planning."""

from __future__ import annotations

from cxlens.stats.compare import Comparison, compare
from cxlens.stats.effects import Effects, estimate_effects
from cxlens.stats.multiple import adjust_p_values
from cxlens.stats.planning import Plan, duration, minimum_detectable_effect, sample_size
from cxlens.stats.srm import SampleRatioCheck, srm_check
from cxlens.stats.summary import Moments
from cxlens.stats.sums import Sums

__all__ = [
    "Comparison",
    "Effects",
    "Moments",
    "Plan",
    "SampleRatioCheck",
    "Sums",
    "adjust_p_values",
    "compare",
    "duration",
    "estimate_effects",
    "minimum_detectable_effect",
    "sample_size",
    "srm_check",
]
