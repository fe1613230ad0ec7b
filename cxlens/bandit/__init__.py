"""Bandits for offer tests: Thompson sampling across many offers, with batch updates and saved state.

``Bandit`` allocates traffic by each offer's posterior probability of being best (binary or revenue
rewards), floored at a minimum weight; ``BanditState`` is what it saves; ``simulate`` compares it
with uniform allocation on known offers. See docs/bandits.md.
"""

from __future__ import annotations

from cxlens.bandit.simulate import SimulationResult, example_rates, simulate
from cxlens.bandit.state import BanditState, Prior, Reward, Settings
from cxlens.bandit.thompson import Bandit, OfferSummary, Posterior, floor_weights

__all__ = ["Bandit", "BanditState", "OfferSummary", "Posterior", "Prior", "Reward", "Settings", "SimulationResult",
           "example_rates", "floor_weights", "simulate"]
