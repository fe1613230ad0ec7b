"""Customer-lifetime-value models: BG/NBD, Pareto/NBD and Gamma-Gamma, scikit-learn style."""

from cxlens.clv.base import CLVModel, validate_summary
from cxlens.clv.bgnbd import BGNBD
from cxlens.clv.gammagamma import GammaGamma
from cxlens.clv.paretonbd import ParetoNBD

__all__ = ["BGNBD", "CLVModel", "GammaGamma", "ParetoNBD", "validate_summary"]
