"""Multi-touch attribution: rule-based models, an exact Markov chain of order 1-3, and Shapley values.

Every model reads path counts (cxlens.attribution.paths): a ChannelAttribution-layout file or the
conversion paths built from the workspace's sessions and orders (cxlens.attribution.workspace).
"""

from cxlens.attribution.markov import MarkovChain, markov
from cxlens.attribution.models import MODELS, attribute
from cxlens.attribution.paths import PathCounts, read_path_file
from cxlens.attribution.result import AttributionResult, ChannelCredit
from cxlens.attribution.rules import RULES, rule_based
from cxlens.attribution.shapley import shapley

__all__ = ["MODELS", "RULES", "AttributionResult", "ChannelCredit", "MarkovChain", "PathCounts", "attribute", "markov",
           "read_path_file", "rule_based", "shapley"]
