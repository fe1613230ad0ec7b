"""RFM summaries, RFM scores and customer value classes on Spark (local mode) equal DuckDB's, which
test_clv_workspace and test_value check against pandas: the same Ibis code on both engines."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cxlens import Workspace
from cxlens.clv.summary import rfm_summary
from cxlens.value import ValueSettings, customer_value, rfm_scores

from reference.fixture import fixture_tables
from test_metrics_conformance import fill


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return fixture_tables()


@pytest.fixture(scope="module")
def duck(tmp_path_factory: pytest.TempPathFactory, tables: dict[str, pd.DataFrame]) -> Iterator[Workspace]:
    ws = Workspace.open(Path(tmp_path_factory.mktemp("value-duck")) / "fixture.duckdb")
    fill(ws, tables)
    yield ws
    ws.close()


@pytest.fixture(scope="module")
def sparkws(spark: Any, tables: dict[str, pd.DataFrame]) -> Workspace:
    from cxlens.workspace import SparkBackend

    ws = Workspace.on(SparkBackend(spark, "cxlens_value"))
    fill(ws, tables)
    return ws


def _same(want: pd.DataFrame, got: pd.DataFrame, key: str = "profile_id") -> None:
    assert len(want) > 20 and list(got.columns) == list(want.columns)
    want, got = want.sort_values(key).reset_index(drop=True), got.sort_values(key).reset_index(drop=True)
    for column in want.columns:
        w, g = want[column], got[column]
        if pd.api.types.is_numeric_dtype(w) and not pd.api.types.is_bool_dtype(w):
            np.testing.assert_allclose(g.to_numpy(float), w.to_numpy(float), rtol=1e-9, atol=1e-9, err_msg=column)
        else:
            assert g.astype(object).where(g.notna(), None).tolist() == w.astype(object).where(w.notna(), None).tolist(), column


@pytest.mark.spark
def test_rfm_summary_on_spark_equals_duckdb(duck: Workspace, sparkws: Workspace) -> None:
    orders = duck.table("orders").to_pandas()
    middle = (orders.ordered_at.min() + (orders.ordered_at.max() - orders.ordered_at.min()) / 2).date()
    for kwargs in ({}, {"calibration_end": middle, "unit": "D"}):
        _same(rfm_summary(duck, **kwargs), rfm_summary(sparkws, **kwargs))


@pytest.mark.spark
def test_rfm_scores_and_value_classes_on_spark_equal_duckdb(duck: Workspace, sparkws: Workspace) -> None:
    _same(rfm_scores(duck), rfm_scores(sparkws))
    settings = ValueSettings(predict=False)
    want, got = customer_value(duck, settings=settings).frame, customer_value(sparkws, settings=settings).frame
    assert want.value_class.nunique() >= 3  # the fixture exercises several classes, not only "other"
    _same(want, got)
