"""A summary of the resolved identities: how many profiles, how they were built, what was held back."""

from __future__ import annotations

from typing import Any

import ibis

from cxlens.identity.graph import PERSON_TABLES
from cxlens.workspace import Workspace

SIZE_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("1", 1, 1), ("2", 2, 2), ("3-5", 3, 5), ("6-10", 6, 10), ("11-50", 11, 50), (">50", 51, None),
)
"""Histogram buckets of keys per profile (label, lowest, highest)."""


def identity_stats(ws: Workspace) -> dict[str, Any]:
    """Profiles, keys by type, merged profiles, records with/without profile, sizes, flagged keys."""
    ik = ws.table("identity_keys")
    by_type = ik.group_by("key_type").agg(n=ik.count()).order_by("key_type").to_pyarrow().to_pylist()
    assigned = ik.filter(ik.profile_id.notnull())
    sizes = assigned.group_by("profile_id").agg(size=assigned.count())
    bucket = ibis.cases(
        *[((sizes.size >= lo) & (sizes.size <= hi), label) for label, lo, hi in SIZE_BUCKETS if hi is not None],
        else_=SIZE_BUCKETS[-1][0],
    )
    hist = {r["bucket"]: int(r["n"]) for r in sizes.group_by(bucket=bucket).agg(n=sizes.count()).to_pyarrow().to_pylist()}
    summary = sizes.aggregate(
        profiles=sizes.count(), merged=(sizes.size > 1).cast("int64").sum(), largest=sizes.size.max()
    ).to_pyarrow().to_pylist()[0]

    have = ws.backend.tables()
    records: dict[str, dict[str, int]] = {}
    for name in PERSON_TABLES:
        if name not in have:
            continue
        t = ws.table(name)
        r = t.aggregate(total=t.count(), with_profile=t.profile_id.count()).to_pyarrow().to_pylist()[0]
        total, with_profile = int(r["total"] or 0), int(r["with_profile"] or 0)
        records[name] = {"with_profile": with_profile, "without_profile": total - with_profile}

    flags = ws.table("identity_flags")
    flagged = (
        flags.select("key", "key_type", "distinct_customers")
        .order_by([ibis.desc("distinct_customers"), "key"])
        .to_pyarrow()
        .to_pylist()
    )
    return {
        "profiles": int(summary["profiles"] or 0),
        "keys": {r["key_type"]: int(r["n"]) for r in by_type},
        "keys_total": sum(int(r["n"]) for r in by_type),
        "merged_profiles": int(summary["merged"] or 0),
        "records": {
            "with_profile": sum(v["with_profile"] for v in records.values()),
            "without_profile": sum(v["without_profile"] for v in records.values()),
            "by_table": records,
        },
        "component_sizes": {
            "histogram": {label: hist.get(label, 0) for label, _, _ in SIZE_BUCKETS},
            "max": int(summary["largest"] or 0),
        },
        "flagged": flagged,
    }
