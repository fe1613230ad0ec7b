"""Conformance: the portable resolution on Spark gives DuckDB's partition and the same ids."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from cxlens import Workspace
from cxlens.identity import resolve
from cxlens.workspace import SparkBackend

from test_identity import Loader, record_partition

pytestmark = pytest.mark.spark


def batches(seed: int = 7) -> list[tuple[str, str, list[dict]]]:
    """A few hundred rows over a small identifier space: chains, shared emails, phone variants."""
    rng = random.Random(seed)
    pick = lambda n: rng.randrange(n)  # noqa: E731
    customers = [{"customer_id": str(i), "email": f"p{pick(60)}@Mail.com" if rng.random() < 0.8 else None,
                  "phone": rng.choice([f"555 010 {pick(40):04d}", None]), "record_key": f"c{i}"} for i in range(80)]
    family = [{"customer_id": f"f{i}", "email": "family@home.net", "record_key": f"f{i}"} for i in range(6)]
    events = [{"anonymous_id": f"a{pick(90)}", "customer_id": rng.choice([str(pick(80)), None, None]),
               "email": rng.choice([f" P{pick(60)}@mail.COM", None, None]), "record_key": f"e{i}"} for i in range(200)]
    orders = [{"order_id": str(i), "loyalty_id": rng.choice([f"L{pick(50)}", None]),
               "phone": rng.choice([f"+1 555-010-{pick(40):04d}", None]), "record_key": f"o{i}"} for i in range(80)]
    return [("customers", "crm", customers + family), ("events", "web", events), ("orders", "pos", orders)]


def load_all(ws: Workspace) -> None:
    loader = Loader(ws)
    for name, source, rows in batches():
        loader.add(name, rows, source)


def profile_ids(ws: Workspace) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in ("customers", "events", "orders"):
        for r in ws.table(name).select("record_key", "profile_id").to_pyarrow().to_pylist():
            out[f"{name}/{r['record_key']}"] = r["profile_id"]
    return out


def test_spark_resolution_matches_duckdb(spark, tmp_path: Path) -> None:
    with Workspace.open(tmp_path / "ref.duckdb") as duck:
        load_all(duck)
        duck_report = resolve(duck, max_shared=5)
        duck_partition = record_partition(duck)
        duck_ids = profile_ids(duck)

    sw = Workspace.on(SparkBackend(spark, database="cxlens_identity_conformance"))
    try:
        load_all(sw)
        report = resolve(sw, max_shared=5)
        assert record_partition(sw) == duck_partition
        assert profile_ids(sw) == duck_ids
        assert (report.keys, report.edges, report.profiles, report.flagged) == (
            duck_report.keys, duck_report.edges, duck_report.profiles, duck_report.flagged)
        assert report.flagged >= 1  # the family email, plus ids the random data over-shares
        assert resolve(sw, max_shared=5).rows_assigned == 0
    finally:
        spark.sql("DROP DATABASE IF EXISTS cxlens_identity_conformance CASCADE")
        spark.catalog.setCurrentDatabase("default")
