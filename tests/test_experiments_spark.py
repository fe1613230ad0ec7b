"""The same experiment code on Spark (local mode) gives the DuckDB results, which test_experiments
checks against pandas: units, sufficient statistics and effects, overall and per channel."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cxlens import Workspace
from cxlens.experiments.workspace import analyze_experiment
from cxlens.semantic import Catalog

from reference.fixture import fixture_tables
from test_metrics_conformance import fill

METRICS = ("orders", "revenue", "aov", "active_customers", "repeat_purchase_rate", "nps", "click_through_rate")
FIELDS = ("n", "control_n", "mean", "control_mean", "abs_effect", "rel_effect", "ci_low", "ci_high", "p_value",
          "variance_reduction")


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return fixture_tables()


@pytest.fixture(scope="module")
def duck(tmp_path_factory: pytest.TempPathFactory, tables: dict[str, pd.DataFrame]) -> Iterator[Workspace]:
    ws = Workspace.open(Path(tmp_path_factory.mktemp("exp-duck")) / "fixture.duckdb")
    fill(ws, tables)
    yield ws
    ws.close()


@pytest.fixture(scope="module")
def sparkws(spark: Any, tables: dict[str, pd.DataFrame]) -> Workspace:
    from cxlens.workspace import SparkBackend

    ws = Workspace.on(SparkBackend(spark, "cxlens_experiments"))
    fill(ws, tables)
    return ws


def _results(ws: Workspace, by: str | None) -> dict[tuple[Any, ...], dict[str, Any]]:
    analysis = analyze_experiment(ws, "exp-reco", METRICS, by=by, pre_days=60, catalog=Catalog.built_in())
    return {(r["metric"], r["variant"], r.get(by) if by else None): r for r in analysis.results}


@pytest.mark.spark
@pytest.mark.parametrize("by", [None, "channel"])
def test_spark_gives_the_duckdb_results(duck: Workspace, sparkws: Workspace, by: str | None) -> None:
    want, got = _results(duck, by), _results(sparkws, by)
    assert set(got) == set(want) and len(want) >= len(METRICS)
    assert any(r["code"] == "ok" for r in want.values())
    for key, w in want.items():
        g = got[key]
        assert g["code"] == w["code"], key
        for f in FIELDS:
            if w[f] is None:
                assert g[f] is None, (key, f)
            else:
                assert g[f] == pytest.approx(w[f], rel=1e-6, abs=1e-12), (key, f)
