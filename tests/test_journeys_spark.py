"""Journeys and attribution on Spark (local mode) equal DuckDB's, which test_journeys and
test_attribution check against pandas: touchpoints, case friction features, paths, a funnel and
the workspace's attribution, the same Ibis code on both engines."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cxlens import Workspace
from cxlens.attribution.workspace import attribute_workspace
from cxlens.journeys import build_touchpoints, case_features, funnel, top_paths

from reference.fixture import fixture_tables
from test_metrics_conformance import fill


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return fixture_tables()


@pytest.fixture(scope="module")
def duck(tmp_path_factory: pytest.TempPathFactory, tables: dict[str, pd.DataFrame]) -> Iterator[Workspace]:
    ws = Workspace.open(Path(tmp_path_factory.mktemp("journeys-duck")) / "fixture.duckdb")
    fill(ws, tables)
    yield ws
    ws.close()


@pytest.fixture(scope="module")
def sparkws(spark: Any, tables: dict[str, pd.DataFrame]) -> Workspace:
    from cxlens.workspace import SparkBackend

    ws = Workspace.on(SparkBackend(spark, "cxlens_journeys"))
    fill(ws, tables)
    return ws


def _frame(expr: Any) -> pd.DataFrame:
    """Rows in a canonical order, timestamps as UTC-naive values, so both engines' frames compare."""
    df = expr.to_pandas()
    for c in df.columns:
        if isinstance(df[c].dtype, pd.DatetimeTZDtype):
            df[c] = df[c].dt.tz_convert("UTC").dt.tz_localize(None)
        elif pd.api.types.is_datetime64_any_dtype(df[c]):
            df[c] = df[c].astype("datetime64[us]")
    return df.sort_values(list(df.columns), na_position="first", kind="mergesort").reset_index(drop=True)


def _same(want: pd.DataFrame, got: pd.DataFrame) -> None:
    assert len(want) > 10 and len(got) == len(want) and list(got.columns) == list(want.columns)
    for c in want.columns:
        w, g = want[c], got[c]
        if pd.api.types.is_float_dtype(w):
            np.testing.assert_allclose(g.to_numpy(float), w.to_numpy(float), rtol=1e-9, atol=1e-9, err_msg=c)
        else:
            assert g.astype(object).where(g.notna(), None).tolist() == w.astype(object).where(w.notna(), None).tolist(), c


@pytest.mark.spark
def test_touchpoints_and_case_features_on_spark_equal_duckdb(duck: Workspace, sparkws: Workspace) -> None:
    _same(_frame(build_touchpoints(duck)), _frame(build_touchpoints(sparkws)))
    _same(_frame(case_features(duck)), _frame(case_features(sparkws)))


@pytest.mark.spark
def test_paths_funnel_and_attribution_on_spark_equal_duckdb(duck: Workspace, sparkws: Workspace) -> None:
    pd.testing.assert_frame_equal(top_paths(sparkws), top_paths(duck), check_dtype=False)
    want, got = funnel(duck), funnel(sparkws)
    pd.testing.assert_frame_equal(got.frame, want.frame, check_dtype=False)
    for model in ("last", "linear", "markov"):
        w, g = attribute_workspace(duck, model), attribute_workspace(sparkws, model)
        assert w.total_conversions > 0 and g.total_conversions == pytest.approx(w.total_conversions)
        assert {c.channel: round(c.conversions, 9) for c in g.channels} == {c.channel: round(c.conversions, 9) for c in w.channels}
