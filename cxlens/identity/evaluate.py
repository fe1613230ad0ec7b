"""Pairwise precision and recall of the resolved key partition against a known truth.

Two keys form a predicted pair when they share a profile and a true pair when they belong to the
same person. With the contingency table n_ij (keys in profile i and person j), true positives are
sum C(n_ij, 2), predicted pairs sum C(a_i, 2) and true pairs sum C(b_j, 2) (the pair-counting
view of Rand-type indices; Hubert & Arabie, "Comparing partitions", J. Classification 2, 1985),
so no pair is ever enumerated.
"""

from __future__ import annotations

import pandas as pd

from cxlens.workspace import Workspace


def _pairs(sizes: pd.Series) -> int:
    n = sizes.astype("int64")
    return int((n * (n - 1) // 2).sum())


def evaluate(ws: Workspace, truth_keys: dict[str, int]) -> dict[str, float | int]:
    """Precision, recall and F1 of same-profile key pairs; keys missing on either side are ignored.

    Flagged keys (no profile) count as missing: the guard's job is to keep them out of profiles.
    """
    ik = ws.table("identity_keys")
    pred = ik.filter(ik.profile_id.notnull()).select("key", "profile_id").to_pandas()
    truth = pd.DataFrame({"key": list(truth_keys), "person": list(truth_keys.values())})
    both = pred.merge(truth, on="key", how="inner")
    tp = _pairs(both.groupby(["profile_id", "person"]).size())
    predicted = _pairs(both.groupby("profile_id").size())
    actual = _pairs(both.groupby("person").size())
    precision = tp / predicted if predicted else 1.0
    recall = tp / actual if actual else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "keys": int(len(both)),
        "true_pairs": actual,
        "predicted_pairs": predicted,
        "correct_pairs": tp,
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }
