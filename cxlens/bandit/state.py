"""A bandit's state: settings plus per-offer sufficient statistics, saved as versioned JSON.

Rewards enter only through sums that add up — trials and successes for binary rewards; n, sum,
sum of squares and the count of non-zero rewards for revenue — so a batch of results updates the
state in one step, the order of results does not matter, and the file stays small whatever the
traffic (the approach of GrowthBook's gbstats). The file is replaced atomically (temp file, fsync,
``os.replace``), so a reader (the HTTP service, another ``cxlens bandit`` command) never sees half
a state. Two writers at once still lose one update: callers that write concurrently need a lock.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from cxlens.errors import BanditError

Reward = Literal["binary", "revenue"]
FORMAT = "cxlens.bandit"
VERSION = 1
# Seeds stay below 2**53 so a JSON reader that holds numbers as doubles (JavaScript) keeps them exact.
MAX_SEED = 2**53 - 1


@dataclass(frozen=True)
class Prior:
    """Prior beliefs, worth a few observations so the data soon dominates.

    ``alpha``, ``beta``: the Beta prior of an offer's conversion rate (Beta(1, 1) is uniform).
    ``value_weight``: revenue only; how many observations the prior of an offer's mean non-zero
    reward is worth. It is centred on the mean non-zero reward pooled over every offer.
    """

    alpha: float = 1.0
    beta: float = 1.0
    value_weight: float = 1.0

    def __post_init__(self) -> None:
        for name in ("alpha", "beta", "value_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0.1:
                raise BanditError(f"Prior {name} must be a number of at least 0.1, got {value!r}.")
            object.__setattr__(self, name, float(value))


@dataclass(frozen=True)
class Settings:
    """What a bandit optimizes and how: reward kind, exploration floor, prior and random seed."""

    reward: Reward = "binary"
    min_weight: float = 0.01
    seed: int = 0
    prior: Prior = field(default_factory=Prior)

    def __post_init__(self) -> None:
        if self.reward not in get_args(Reward):
            raise BanditError(f"Reward must be one of {', '.join(get_args(Reward))}, got {self.reward!r}.")
        m = self.min_weight
        if isinstance(m, bool) or not isinstance(m, (int, float)) or not 0 <= m <= 1:
            raise BanditError(f"min_weight must be a number from 0 to 1, got {m!r}.")
        object.__setattr__(self, "min_weight", float(m))
        s = self.seed
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or not 0 <= s <= MAX_SEED:
            raise BanditError(f"seed must be a whole number from 0 to 2**53 - 1, got {s!r}.")
        object.__setattr__(self, "seed", int(s))
        if not isinstance(self.prior, Prior):
            raise BanditError(f"prior must be a cxlens.bandit.Prior, got {type(self.prior).__name__}.")


def new_seed() -> int:
    """A seed from OS entropy, recorded in the state so the bandit stays reproducible from its file."""
    return secrets.randbelow(MAX_SEED + 1)


@dataclass
class BanditState:
    """Settings and, per offer (active or retired, in the order added), its reward sums.

    Arrays are aligned with ``offers``: ``n`` trials, ``sum`` of rewards (successes for binary),
    ``sum_sq`` of squared rewards, ``nonzero`` rewards. ``updates`` counts applied batches and
    ``assigned`` the assignments drawn by ``Bandit.choose`` (it seeds the next draw).
    """

    settings: Settings
    offers: list[str]
    active: np.ndarray
    n: np.ndarray
    sum: np.ndarray
    sum_sq: np.ndarray
    nonzero: np.ndarray
    updates: int = 0
    assigned: int = 0

    @classmethod
    def new(cls, settings: Settings, offers: list[str]) -> BanditState:
        """A state with no results yet; every offer active."""
        k = len(offers)
        state = cls(settings, list(offers), np.ones(k, dtype=bool), np.zeros(k, dtype=np.int64), np.zeros(k),
                     np.zeros(k), np.zeros(k, dtype=np.int64))
        state.check()
        return state

    def check(self) -> None:
        """Raise BanditError unless offer ids are unique text and the floor fits the active offers."""
        seen: set[str] = set()
        for offer in self.offers:
            if not isinstance(offer, str) or not offer.strip():
                raise BanditError(f"Offer ids must be non-empty text, got {offer!r}.")
            if offer in seen:
                raise BanditError(f"Offer {offer!r} is listed twice; offer ids must be unique.")
            seen.add(offer)
        k = int(self.active.sum())
        if k == 0:
            raise BanditError("A bandit needs at least one active offer.")
        if self.settings.min_weight * k > 1 + 1e-12:
            raise BanditError(
                f"min_weight {self.settings.min_weight:g} times {k} active offers exceeds 1; "
                f"use a min_weight of at most {1 / k:.6g}."
            )

    def index(self) -> dict[str, int]:
        """Position of every offer id in the arrays."""
        return {offer: i for i, offer in enumerate(self.offers)}

    def copy(self) -> BanditState:
        return BanditState(self.settings, list(self.offers), self.active.copy(), self.n.copy(), self.sum.copy(),
                           self.sum_sq.copy(), self.nonzero.copy(), self.updates, self.assigned)

    # --- JSON ---------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """A plain JSON object; floats are written with repr, so a round trip is exact.

        Shape: ``{"format": "cxlens.bandit", "version": 1, "settings": {"reward", "min_weight",
        "seed", "prior": {"alpha", "beta", "value_weight"}}, "updates", "assigned", "offers": [...]}``
        where each offer is ``{"id", "active", "trials", "successes"}`` (binary) or
        ``{"id", "active", "n", "sum", "sum_sq", "nonzero"}`` (revenue).
        """
        offers = []
        for i, offer in enumerate(self.offers):
            row: dict[str, Any] = {"id": offer, "active": bool(self.active[i])}
            if self.settings.reward == "binary":
                row |= {"trials": int(self.n[i]), "successes": int(self.sum[i])}
            else:
                row |= {"n": int(self.n[i]), "sum": float(self.sum[i]), "sum_sq": float(self.sum_sq[i]),
                        "nonzero": int(self.nonzero[i])}
            offers.append(row)
        s = self.settings
        return {"format": FORMAT, "version": VERSION,
                "settings": {"reward": s.reward, "min_weight": s.min_weight, "seed": s.seed, "prior": asdict(s.prior)},
                "updates": self.updates, "assigned": self.assigned, "offers": offers}

    @classmethod
    def from_json(cls, data: Any, *, source: str = "the bandit state") -> BanditState:
        """Read what ``to_json`` wrote; every problem found is listed in one BanditError."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise BanditError(f"{source} is not a cxlens bandit state (no \"format\": \"{FORMAT}\").")
        version = data.get("version")
        if not isinstance(version, int) or version < 1:
            raise BanditError(f"{source} has no valid \"version\"; expected {VERSION}.")
        if version > VERSION:
            raise BanditError(f"{source} is version {version}, written by a newer cxlens; this one reads version {VERSION}.")
        try:
            raw = data["settings"]
            settings = Settings(reward=raw["reward"], min_weight=raw["min_weight"], seed=raw["seed"],
                                prior=Prior(**raw.get("prior", {})))
        except BanditError as exc:
            raise BanditError(f"{source}: {exc}") from None
        except (KeyError, TypeError):
            raise BanditError(f"{source}: \"settings\" must hold reward, min_weight, seed and prior.") from None
        problems: list[str] = []
        rows = data.get("offers")
        if not isinstance(rows, list) or not rows:
            raise BanditError(f"{source}: \"offers\" must be a non-empty list.")
        binary = settings.reward == "binary"
        keys = ("trials", "successes") if binary else ("n", "sum", "sum_sq", "nonzero")
        cols: dict[str, list[float]] = {k: [] for k in keys}
        offers, active = [], []
        for i, row in enumerate(rows):
            where = f"offers[{i}]"
            if not isinstance(row, dict) or not isinstance(row.get("id"), str) or not isinstance(row.get("active"), bool):
                problems.append(f"{where} needs a text \"id\" and a true/false \"active\"")
                continue
            offers.append(row["id"])
            active.append(row["active"])
            for k in keys:
                v = row.get(k)
                counts = k in ("trials", "successes", "n", "nonzero")
                ok = (isinstance(v, int) if counts else isinstance(v, (int, float))) and not isinstance(v, bool)
                if not ok or not math.isfinite(v) or v < 0:
                    problems.append(f"{where} ({row['id']}) \"{k}\" must be a {'whole ' if counts else ''}number >= 0")
                    v = 0
                cols[k].append(v)
            if binary and cols["successes"][-1] > cols["trials"][-1]:
                problems.append(f"{where} ({row['id']}) has more successes than trials")
            if not binary:
                n, s, ss, nz = (cols[k][-1] for k in keys)
                if nz > n:
                    problems.append(f"{where} ({row['id']}) has more non-zero rewards than rewards")
                if s * s > nz * ss * (1 + 1e-9) + 1e-9:
                    problems.append(f"{where} ({row['id']}) has a sum and sum_sq no set of {nz} rewards can have")
        for k in ("updates", "assigned"):
            v = data.get(k, 0)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                problems.append(f"\"{k}\" must be a whole number >= 0")
        if problems:
            raise BanditError(f"{source} is invalid: {'; '.join(problems)}.")
        if binary:
            successes = np.asarray(cols["successes"], dtype=np.int64)
            n, total, nonzero = np.asarray(cols["trials"], dtype=np.int64), successes.astype(float), successes
            total_sq = total.copy()
        else:
            n, total = np.asarray(cols["n"], dtype=np.int64), np.asarray(cols["sum"], dtype=float)
            total_sq, nonzero = np.asarray(cols["sum_sq"], dtype=float), np.asarray(cols["nonzero"], dtype=np.int64)
        state = cls(settings, offers, np.asarray(active, dtype=bool), n, total, total_sq, nonzero,
                    int(data.get("updates", 0)), int(data.get("assigned", 0)))
        try:
            state.check()
        except BanditError as exc:
            raise BanditError(f"{source}: {exc}") from None
        return state

    # --- files --------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the state as JSON, atomically: a temp file in the same folder, fsync, os.replace."""
        target = Path(path)
        if target.is_dir():
            raise BanditError(f"{target} is a folder; give a file name such as {target / 'bandit.json'}.")
        text = json.dumps(self.to_json(), indent=1, ensure_ascii=False) + "\n"
        try:
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        except OSError as exc:
            raise BanditError(f"Cannot write {target}: {exc.strerror or exc}.") from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable
            dir_fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> BanditState:
        """Read a state file written by ``save``."""
        source = Path(path)
        try:
            text = source.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise BanditError(f"No bandit state at {source}; create one with `cxlens bandit init {source} --offers a,b`.") from None
        except OSError as exc:
            raise BanditError(f"Cannot read {source}: {exc.strerror or exc}.") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BanditError(f"{source} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}).") from None
        return cls.from_json(data, source=str(source))
