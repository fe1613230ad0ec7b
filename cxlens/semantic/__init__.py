"""The semantic layer: KPIs declared as data, compiled to Ibis, run in the workspace's engine."""

from cxlens.semantic.api import Measurer, MetricResult, catalog_for, measure
from cxlens.semantic.model import Dimension, Measure, Metric, Query, Segment
from cxlens.semantic.registry import Catalog

__all__ = ["Catalog", "Dimension", "Measure", "Measurer", "Metric", "MetricResult", "Query", "Segment", "catalog_for", "measure"]
