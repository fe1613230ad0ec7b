"""Dirty rows and exact duplicates with a known location, so ingest quality checks can be scored.

Each dirty row carries exactly one problem (one column, one reason) so the quarantine reason is
unambiguous; duplicates are exact copies of clean rows placed right after their original.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cxlens.simulate.writer import Export, as_text


def apply_dirt(rng: np.random.Generator, export: Export) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Break some rows and duplicate others in place; return (dirty, duplicates) truth records."""
    n = export.rows
    allowed = np.ones(n, dtype=bool) if export.protect is None else ~export.protect
    k_dirty = int(round(n * export.dirt_rate)) if export.dirt else 0
    k_dup = int(round(n * export.duplicate_rate))
    dirty_rows = np.zeros(0, dtype=np.int64)
    spec_of = np.zeros(0, dtype=np.int64)
    used = np.zeros(n, dtype=bool)
    if k_dirty:
        per_spec = np.full(len(export.dirt), k_dirty // len(export.dirt))
        per_spec[: k_dirty % len(export.dirt)] += 1
        picks, specs = [], []
        for s, (spec, k) in enumerate(zip(export.dirt, per_spec)):
            pool = allowed & ~used
            if spec.rows is not None:
                pool &= spec.rows
            cand = np.flatnonzero(pool)
            chosen = np.sort(rng.choice(cand, size=min(int(k), cand.size), replace=False))
            used[chosen] = True
            picks.append(chosen)
            specs.append(np.full(chosen.size, s))
        dirty_rows = np.concatenate(picks)
        spec_of = np.concatenate(specs)
    dup_cand = np.flatnonzero(~used)
    dup_src = np.sort(rng.choice(dup_cand, size=min(k_dup, dup_cand.size), replace=False))

    for s, spec in enumerate(export.dirt):
        rows = dirty_rows[spec_of == s]
        if rows.size == 0:
            continue
        col = as_text(export.columns[spec.source_column])
        vals = np.asarray(spec.values, dtype=object)[np.arange(rows.size) % len(spec.values)]
        col[rows] = vals
        export.columns[spec.source_column] = col
    clean = np.ones(n, dtype=bool)
    clean[dirty_rows] = False

    key = np.concatenate([np.arange(n, dtype=np.float64), dup_src + 0.5])
    order = np.argsort(key, kind="stable")
    position = np.empty(order.size, dtype=np.int64)
    position[order] = np.arange(order.size)
    first = export.first_line
    for name, values in export.columns.items():
        export.columns[name] = np.concatenate([values, values[dup_src]])[order]
    export.person = np.concatenate([export.person, export.person[dup_src]])[order]
    export.clean = np.concatenate([clean, np.ones(dup_src.size, dtype=bool)])[order]
    if export.protect is not None:
        export.protect = np.concatenate([export.protect, export.protect[dup_src]])[order]

    dirty = []
    for row, s in zip(dirty_rows.tolist(), spec_of.tolist()):
        spec = export.dirt[s]
        raw = export.columns[spec.source_column][position[row]]
        dirty.append({"file": export.file, "line": int(position[row]) + first, "table": export.table,
                      "column": spec.column, "source_column": spec.source_column, "reason": spec.reason,
                      "raw_value": "" if raw is None else str(raw)})
    dirty.sort(key=lambda d: d["line"])
    dups = [{"file": export.file, "line": int(position[n + i]) + first, "duplicate_of_line": int(position[src]) + first}
            for i, src in enumerate(dup_src.tolist())]
    return dirty, dups
