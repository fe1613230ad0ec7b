"""Statistics from sufficient statistics: compare a metric between two periods or groups."""

from __future__ import annotations

from cxlens.stats.compare import Comparison, compare
from cxlens.stats.summary import Moments

__all__ = ["Comparison", "Moments", "compare"]
