"""Simulation parameters and the causal effects the simulated retailer is built with.

The effect sizes live here as named constants because they are the "known truth" that
`truth.json` publishes and that analyses of the simulated data are expected to recover.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone

import numpy as np

from cxlens.errors import SimulationError

DAY = 86_400
"""Seconds per day; simulated time is seconds since the start date, 00:00 UTC."""

MAX_CUSTOMERS = 2_000_000
MAX_DAYS = 3_650

SEGMENTS: tuple[str, ...] = ("regular", "bargain_hunter", "high_value", "emerging_high_value")
"""Latent behaviour segments (index = segment code)."""
REGULAR, BARGAIN, HVC, EMERGING = 0, 1, 2, 3

EXPERIMENT_ID = "perso-2025"
PERSONALIZATION_LIFT = 0.20
"""Relative lift of per-session purchase probability for units in the personalized arm that are
in the target segment (>= 2 web-shop orders before assignment); zero lift elsewhere."""
PERSONALIZATION_MIN_PRIOR_ORDERS = 2
PERSONALIZED_SHARE = 0.5
"""Share of experiment units in the `personalized` arm (the rest is the `holdout`)."""

EMAIL_CLICK_PER_OPEN = 0.12
EMAIL_PERSONALIZED_CTR_LIFT = 0.30
"""Relative lift of clicks per sent message for personalized email content."""

CHURN_AFTER_BAD_CASE = 0.50
BASELINE_CHURN = {REGULAR: 0.10, BARGAIN: 0.14, HVC: 0.04, EMERGING: 0.02}
"""Probability of churning during the period without / after a bad support experience."""

COUPON_PROBABILITY = {REGULAR: 0.18, BARGAIN: 0.45, HVC: 0.05, EMERGING: 0.18}
SALE_ITEM_PROBABILITY = {REGULAR: 0.20, BARGAIN: 0.45, HVC: 0.05, EMERGING: 0.15}
EXTRA_ITEMS_MEAN = {REGULAR: 0.6, BARGAIN: 0.4, HVC: 1.4, EMERGING: 0.6}
NPS_SHIFT_HVC = 1.5
NPS_SHIFT_BAD_CASE = -3.0

SHARED_EMAIL = "noemail@example.com"
"""A placeholder address store staff type when a customer gives none: shared by many records."""
SHARED_MIN_USERS = 55
"""More than the 50 distinct customer ids cxlens tolerates before it flags an identifier."""


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate: how many customers, over how many days from which start, with which seed."""

    customers: int = 2_000
    days: int = 365
    seed: int = 42
    start: date = date(2025, 1, 1)

    def __post_init__(self) -> None:
        if not isinstance(self.customers, (int, np.integer)) or not 10 <= self.customers <= MAX_CUSTOMERS:
            raise SimulationError(
                f"--customers must be a whole number between 10 and {MAX_CUSTOMERS:,}, got {self.customers!r}."
            )
        if not isinstance(self.days, (int, np.integer)) or not 14 <= self.days <= MAX_DAYS:
            raise SimulationError(f"--days must be a whole number between 14 and {MAX_DAYS:,}, got {self.days!r}.")
        if not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise SimulationError(f"--seed must be a non-negative whole number, got {self.seed!r}.")
        if not isinstance(self.start, date) or isinstance(self.start, datetime):
            raise SimulationError(f"--start must be a date such as 2025-01-01, got {self.start!r}.")

    @property
    def horizon(self) -> float:
        """Length of the simulated period in seconds."""
        return float(self.days * DAY)

    @property
    def epoch(self) -> np.datetime64:
        """The start date at 00:00 UTC as a numpy timestamp (seconds)."""
        return np.datetime64(datetime(self.start.year, self.start.month, self.start.day, tzinfo=timezone.utc).replace(tzinfo=None), "s")

    @property
    def shared_users(self) -> int:
        """How many records share the placeholder email (0 when the population is too small)."""
        return SHARED_MIN_USERS + self.customers // 2_000 if self.customers >= 400 else 0

    def rngs(self, *names: str) -> dict[str, np.random.Generator]:
        """One independent generator per concept, so adding draws in one module never shifts another."""
        seqs = np.random.SeedSequence(int(self.seed)).spawn(len(names))
        return {n: np.random.default_rng(s) for n, s in zip(names, seqs)}


def parse_start(value: str) -> date:
    """The --start option as a date, or a one-sentence error."""
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise SimulationError(f"--start must be a date in the form YYYY-MM-DD such as 2025-01-01, got {value!r}.") from None
