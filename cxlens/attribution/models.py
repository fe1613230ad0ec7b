"""One entry point for every model over path counts: `attribute(paths, "markov", order=2)`."""

from __future__ import annotations

from typing import Literal, get_args

from cxlens.attribution.markov import markov
from cxlens.attribution.paths import PathCounts
from cxlens.attribution.result import AttributionResult
from cxlens.attribution.rules import RULES, rule_based
from cxlens.attribution.shapley import shapley
from cxlens.errors import UsageError

ModelName = Literal["first", "last", "last-non-direct", "linear", "time-decay", "position", "markov", "shapley"]
MODELS: tuple[str, ...] = get_args(ModelName)


def check_model(model: str) -> str:
    """The model name itself, or a UsageError listing the valid ones."""
    if model not in MODELS:
        raise UsageError(f"Unknown attribution model {model!r}; valid models are {', '.join(MODELS)}.")
    return model


def attribute(paths: PathCounts, model: str, *, order: int = 1) -> AttributionResult:
    """Credited conversions and value per channel of `paths` under `model` (time decay needs touch times)."""
    check_model(model)
    if model == "markov":
        return markov(paths, order)
    if model == "shapley":
        return shapley(paths)
    if model == "time-decay":
        raise UsageError("The time-decay model needs the time of every touch, which path counts do not hold; "
                         "run it on the workspace, or choose first, last, last-non-direct, linear, position, markov or shapley.")
    assert model in RULES
    return rule_based(paths, model)  # type: ignore[arg-type]
