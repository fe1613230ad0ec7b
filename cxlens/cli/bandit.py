"""CLI commands under `cxlens bandit`: init, update, weights, simulate (Thompson sampling over offers).

numpy, pandas and cxlens.bandit are imported inside the commands: `cxlens --help` stays fast.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cxlens.cli.output import Format, console, print_json, print_rows
from cxlens.errors import BanditError

if TYPE_CHECKING:
    from cxlens.bandit import OfferSummary

bandit_app = typer.Typer(help="Thompson-sampling bandits for offer tests: a state file, batch updates, weights.",
                         no_args_is_help=True)


class RewardChoice(str, enum.Enum):
    binary = "binary"
    revenue = "revenue"


FORMAT_OPTION = typer.Option("--format", "-f", help="table (for people) or json (for scripts).")
STATE_ARGUMENT = typer.Argument(help="The bandit's state file (JSON).", show_default=False)
DRAWS_OPTION = typer.Option("--draws", min=1, help="Monte-Carlo draws per offer for P(best).")


@bandit_app.command("init")
def init_command(
    state: Annotated[Path, STATE_ARGUMENT],
    offers: Annotated[str, typer.Option("--offers", help="Offer ids, separated by commas.", show_default=False)],
    reward: Annotated[RewardChoice, typer.Option("--reward", help="binary (0/1 per trial) or revenue (an amount >= 0).")] = RewardChoice.binary,
    min_weight: Annotated[float, typer.Option("--min-weight", min=0.0, max=1.0, help="Least share of traffic any offer gets; at most 1 / number of offers.")] = 0.01,
    seed: Annotated[int | None, typer.Option("--seed", min=0, help="Random seed (default: drawn and recorded in the state).", show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing state file (its results are lost).")] = False,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
) -> None:
    """Create a bandit state file with no results yet: every offer gets the same weight.

    JSON output: {"state", "reward", "min_weight", "seed", "offers": [ids]}.

    Examples:

      cxlens bandit init offers.json --offers spring10,freeship,bundle

      cxlens bandit init basket.json --offers a,b,c,d --reward revenue --min-weight 0.02 --seed 7
    """
    from cxlens.bandit import Bandit

    if state.exists() and not force:
        raise BanditError(f"{state} already exists; add --force to replace it (its results would be lost).")
    ids = [o.strip() for o in offers.split(",") if o.strip()]
    bandit = Bandit(ids, reward.value, min_weight=min_weight, seed=seed)
    bandit.save(state)
    s = bandit.settings
    if format is Format.json:
        print_json({"state": str(state), "reward": s.reward, "min_weight": s.min_weight, "seed": s.seed, "offers": ids})
        return
    console.print(f"Wrote {state}: {len(ids)} offers, {s.reward} rewards, min weight {s.min_weight:g}, seed {s.seed}.")


@bandit_app.command("update")
def update_command(
    state: Annotated[Path, STATE_ARGUMENT],
    results: Annotated[Path, typer.Option("--results", "-r", help="CSV or Parquet with columns offer, reward; one row per trial.", show_default=False)],
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
) -> None:
    """Add a batch of results to the state; all rows are checked before anything is written.

    Rows are trials: `offer` is an offer id of the state (a retired offer's late results count),
    `reward` is 0 or 1 (binary) or an amount >= 0 (revenue). Rows in messages count from 1 after
    the header. The state file is replaced atomically.

    JSON output: {"state", "results", "rows", "updates", "offers": [{"offer", "rows", "reward_sum"}]}.

    Examples:

      cxlens bandit update offers.json --results day1.csv

      cxlens bandit update basket.json --results orders.parquet --format json
    """
    from cxlens.bandit import Bandit

    bandit = Bandit.load(state)
    offer_ids, rewards = _read_results(results)
    before_n, before_sum = bandit.state.n.copy(), bandit.state.sum.copy()
    bandit.update(offer_ids, rewards, source=str(results))
    bandit.save(state)
    s = bandit.state
    rows = [{"offer": o, "rows": int(s.n[i] - before_n[i]), "reward_sum": float(s.sum[i] - before_sum[i])}
            for i, o in enumerate(s.offers) if s.n[i] != before_n[i]]
    if format is Format.json:
        print_json({"state": str(state), "results": str(results), "rows": len(offer_ids), "updates": s.updates,
                    "offers": rows})
        return
    print_rows(rows, title=f"{len(offer_ids):,} results from {results}")
    console.print(f"Updated {state} (update {s.updates}).")


@bandit_app.command("weights")
def weights_command(
    state: Annotated[Path, STATE_ARGUMENT],
    draws: Annotated[int, DRAWS_OPTION] = 10_000,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
) -> None:
    """Show the allocation for the next period: each offer's P(best), floored at the minimum weight.

    Also shows trials, mean reward and the 95% posterior interval of the mean reward. The same
    state gives the same weights (the draws are seeded by the state's seed and results).

    JSON output: {"state", "reward", "min_weight", "draws", "offers": [{"offer", "active", "n",
    "mean", "low", "high", "prob_best", "weight", "conversion", "value"}]} (conversion and value,
    the mean non-zero reward, for revenue; null where there is no data).

    Examples:

      cxlens bandit weights offers.json

      cxlens bandit weights basket.json --format json
    """
    from cxlens.bandit import Bandit

    bandit = Bandit.load(state)
    rows = bandit.summary(draws=draws)
    s = bandit.settings
    if format is Format.json:
        print_json({"state": str(state), "reward": s.reward, "min_weight": s.min_weight, "draws": draws,
                    "offers": [r.to_json() for r in rows]})
        return
    print_rows([_shown(r, s.reward) for r in rows],
               title=f"{s.reward} rewards, min weight {s.min_weight:g}, {draws:,} draws")


def _shown(r: OfferSummary, reward: str) -> dict[str, Any]:
    def num(v: float | None, digits: int = 4) -> str:
        return "–" if v is None else f"{v:.{digits}g}"

    row: dict[str, Any] = {"offer": r.offer + ("" if r.active else " (retired)"), "n": r.n, "mean": num(r.mean)}
    if reward == "revenue":
        row |= {"conversion": num(r.conversion), "value": num(r.value)}
    row |= {"95% interval": "–" if r.low is None else f"[{num(r.low)}, {num(r.high)}]",
            "P(best)": num(r.prob_best, 3), "weight": f"{r.weight:.4f}"}
    return row


@bandit_app.command("simulate")
def simulate_command(
    offers: Annotated[int, typer.Option("--offers", min=2, help="Number of offers; true rates drawn around 5%.")] = 20,
    rounds: Annotated[int, typer.Option("--rounds", min=1, help="Update periods.")] = 100,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Trials per period.")] = 200,
    min_weight: Annotated[float, typer.Option("--min-weight", min=0.0, max=1.0, help="The bandit's minimum weight.")] = 0.01,
    draws: Annotated[int, DRAWS_OPTION] = 10_000,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Random seed: the same seed gives the same figures.")] = 0,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
) -> None:
    """Simulate Thompson sampling against uniform allocation and print the regret of each.

    True conversion rates are drawn from Beta(5, 95); each period the bandit assigns a batch,
    sees the results and updates. Regret is the expected number of conversions lost against
    always showing the best offer.

    JSON output: {"offers", "rounds", "batch", "min_weight", "draws", "seed", "best_offer",
    "best_mean", "regret_thompson", "regret_uniform", "ratio", "late_share_best",
    "curve": [{"round", "trials", "thompson", "uniform"}]}.

    Examples:

      cxlens bandit simulate

      cxlens bandit simulate --offers 50 --rounds 200 --batch 500 --seed 3 --format json
    """
    from cxlens.bandit import example_rates, simulate

    result = simulate(example_rates(offers, seed), rounds=rounds, batch=batch, min_weight=min_weight, draws=draws,
                      seed=seed)
    out = result.to_json()
    if format is Format.json:
        print_json({**out, "min_weight": min_weight, "draws": draws, "seed": seed})
        return
    print_rows([{"trials": c["trials"], "Thompson regret": f"{c['thompson']:.1f}", "uniform regret": f"{c['uniform']:.1f}"}
                for c in out["curve"]],
               title=f"Regret: {offers} offers, {rounds} periods of {batch} trials")
    console.print(f"Final regret: Thompson {out['regret_thompson']:.1f}, uniform {out['regret_uniform']:.1f}, "
                  f"ratio {out['ratio']:.2f}. The best offer, {out['best_offer']} ({out['best_mean']:.2%}), got "
                  f"{out['late_share_best']:.0%} of the bandit's last 20% of trials.")


def _read_results(path: Path) -> tuple[Any, Any]:
    """The offer and reward columns of a CSV or Parquet file (offer ids read as text)."""
    import pandas as pd

    if not path.is_file():
        raise BanditError(f"No results file at {path}.")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, dtype={"offer": str}, keep_default_na=False, na_values={"reward": [""]})
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise BanditError(f"Cannot read {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}.") from None
    missing = [c for c in ("offer", "reward") if c not in frame.columns]
    if missing:
        raise BanditError(f"{path} has no {' or '.join(missing)} column; its columns are "
                          f"{', '.join(map(str, frame.columns)) or 'none'} (expected offer, reward).")
    return frame["offer"].astype("string").astype(object).to_numpy(), frame["reward"].to_numpy()


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the main app."""
    app.add_typer(bandit_app, name="bandit")
