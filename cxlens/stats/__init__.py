"""Statistics from sufficient statistics: compare a metric between two periods or groups."""

from __future__ import annotations

from cxlens.stats.compare import Comparison, compare
from cxlens.stats.multiple import adjust_p_values
from cxlens.stats.planning import Plan, duration, minimum_detectable_effect, sample_size
from cxlens.stats.srm import SampleRatioCheck, srm_check
from cxlens.stats.summary import Moments

__all__ = [
    "Comparison",
    "Moments",
    "Plan",
    "SampleRatioCheck",
    "adjust_p_values",
    "compare",
    "duration",
    "minimum_detectable_effect",
    "sample_size",
    "srm_check",
]
