"""Stable profile ids: carry existing ids over to the recomputed components.

Rules (DESIGN.md, Identity: ids are stable across re-runs and across ingests that do not merge):
- every old profile id is owned by the new component holding most of its keys (ties: the
  component with the smallest key), so a split keeps the id on its largest part;
- a component owning several old ids is a merge and keeps the smallest of them;
- a component owning none gets "p_" + the first 16 hex digits of md5(its smallest key), computed
  in the engine so DuckDB and Spark give the same ids; should that id already be in use (the
  smallest key of a split-off part once named a whole profile), it is hashed once more with the
  taken id.
"""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

from cxlens.identity.engine import Scratch, scalar


@dataclass(frozen=True)
class Assignment:
    """key -> profile_id for the recomputed keys, and what happened to the old ids."""

    key_profiles: ir.Table
    """(key, profile_id)"""
    changed: ir.Table
    """(old_pid) ids whose keys now (partly) carry another id: rows holding them need rewriting."""
    merges: int
    splits: int


def fresh_id(label: ir.StringValue) -> ir.StringValue:
    return "p_" + label.hexdigest("md5").substr(0, 16)


def assign_ids(scratch: Scratch, labels: ir.Table, old: ir.Table, taken: ir.Table) -> Assignment:
    """`labels` (key, label), `old` (key, profile_id) of those keys, `taken` (profile_id) in use."""
    prior = old.select(okey=old.key, old_pid=old.profile_id)
    j = labels.left_join(prior, labels.key == prior.okey).select("key", "label", "old_pid")
    j = scratch.save(j, "assign_join")
    had = j.filter(j.old_pid.notnull())
    votes = had.group_by(["old_pid", "label"]).agg(n=had.count())
    ranked = votes.mutate(
        rn=ibis.row_number().over(group_by=votes.old_pid, order_by=[ibis.desc(votes.n), votes.label])
    )
    owners = ranked.filter(ranked.rn == 0)
    owned = owners.group_by("label").agg(own_pid=owners.old_pid.min(), n_owned=owners.count())
    touched = had.select(t_label=had.label).distinct()

    comps = labels.select("label").distinct()
    comps = comps.left_join(owned, comps.label == owned.label).select(
        comps.label, owned.own_pid, owned.n_owned
    )
    comps = comps.left_join(touched, comps.label == touched.t_label).select(
        "label", "own_pid", "n_owned", had_old=touched.t_label.notnull()
    )
    used = taken.select(used_pid=taken.profile_id).distinct()
    comps = comps.mutate(fresh=fresh_id(comps.label))
    comps = comps.left_join(used, comps.fresh == used.used_pid)
    rehash = "p_" + (comps.label + "#" + comps.fresh).hexdigest("md5").substr(0, 16)
    new_id = ibis.ifelse(comps.used_pid.notnull(), rehash, comps.fresh)
    comps = comps.select(
        "label", "n_owned", "had_old", profile_id=ibis.coalesce(comps.own_pid, new_id)
    )
    comps = scratch.save(comps, "assign_components")

    stats = comps.aggregate(
        merges=ibis.ifelse(comps.n_owned > 1, comps.n_owned - 1, 0).sum(),
        splits=(comps.had_old & comps.n_owned.isnull()).sum(),
    ).to_pyarrow().to_pylist()[0]

    key_profiles = j.join(comps, j.label == comps.label).select(j.key, comps.profile_id)
    key_profiles = scratch.save(key_profiles, "assign_keys")
    moved = j.join(comps, j.label == comps.label)
    moved = moved.filter(moved.old_pid.notnull() & (moved.old_pid != moved.profile_id))
    changed = scratch.save(moved.select("old_pid").distinct(), "assign_changed")
    return Assignment(
        key_profiles=key_profiles,
        changed=changed,
        merges=int(stats["merges"] or 0),
        splits=int(stats["splits"] or 0),
    )


def count(table: ir.Table) -> int:
    return int(scalar(table.count()))
