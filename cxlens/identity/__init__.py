"""Identity resolution: every record's identifiers -> one graph -> unified, stable profile ids.

`resolve(ws)` after each ingest, `identity_stats(ws)` to see the result, `evaluate(ws, truth)` to
score it against known people (simulated data).
"""

from cxlens.identity.evaluate import evaluate
from cxlens.identity.resolve import ResolveReport, resolve
from cxlens.identity.stats import identity_stats

__all__ = ["ResolveReport", "evaluate", "identity_stats", "resolve"]
