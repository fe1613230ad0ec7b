"""Customer journeys: touchpoints across sources, paths, funnels, friction and the journey map."""

from cxlens.journeys.friction import (
           FrictionResult,
           FrictionSettings,
           case_features,
           case_scores,
           customer_features,
           friction_costs,
)
from cxlens.journeys.funnel import FunnelResult, funnel
from cxlens.journeys.map import JourneyMap, journey_map
from cxlens.journeys.paths import (
           PathSettings,
           path_counts,
           path_steps,
           sankey,
           top_paths,
)
from cxlens.journeys.regression import RobustFit, ols_hc1
from cxlens.journeys.touchpoints import STAGES, build_touchpoints, shared_touchpoints

__all__ = ["STAGES", "FrictionResult", "FrictionSettings", "FunnelResult", "JourneyMap", "PathSettings", "RobustFit",
           "build_touchpoints", "case_features", "case_scores", "customer_features", "friction_costs", "funnel",
           "journey_map", "ols_hc1", "path_counts", "path_steps", "sankey", "shared_touchpoints",
           "top_paths"]
