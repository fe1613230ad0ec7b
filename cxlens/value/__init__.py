"""Customer value: RFM scores and segments, and the HVC / lapsing / emerging / high-volume classes.

The per-customer result is the workspace table ``customer_value`` (one row per profile with valid
orders), usable as segments by metrics, experiments and triggers.
"""

from cxlens.value.classes import (
    CLASSES,
    COLUMNS,
    TABLE,
    ValueResult,
    ValueSettings,
    customer_value,
    write_customer_value,
)
from cxlens.value.rfm import GRID, SEGMENTS, rfm_scores, rfm_table

__all__ = [
    "CLASSES", "COLUMNS", "GRID", "SEGMENTS", "TABLE", "ValueResult", "ValueSettings", "customer_value", "rfm_scores",
    "rfm_table", "write_customer_value",
]
