"""CLI commands under `cxlens clv`: fit purchase and spend models, predict per-customer value."""

from __future__ import annotations

import enum
import math
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cxlens.cli.context import open_workspace
from cxlens.cli.output import Format, console, print_json, print_rows
from cxlens.errors import UsageError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from cxlens.clv import CLVModel, GammaGamma

clv_app = typer.Typer(help="Customer lifetime value: fit BG/NBD or Pareto/NBD with Gamma-Gamma spend, predict per customer.",
                      no_args_is_help=True)

FORMAT_OPTION = typer.Option("--format", "-f", help="table (for people) or json (for scripts).")
PREDICTIONS_TABLE = "clv_predictions"
BUCKETS = ("0", "1", "2", "3", "4", "5", "6", "7+")


class ModelChoice(str, enum.Enum):
    bgnbd = "bgnbd"
    pareto_nbd = "pareto-nbd"


class SpendChoice(str, enum.Enum):
    gamma_gamma = "gamma-gamma"
    none = "none"


class UnitChoice(str, enum.Enum):
    W = "W"
    D = "D"
    M = "M"


MODEL_OPTION = typer.Option("--model", "-m", help="Purchase model: bgnbd (dropout after a purchase) or pareto-nbd (dropout any time).")
UNIT_OPTION = typer.Option("--unit", help="Time unit of frequency/recency/T: W weeks, D days, M 30-day months.")


def _purchase_model(choice: ModelChoice) -> CLVModel:
    from cxlens.clv import BGNBD, ParetoNBD

    return BGNBD() if choice is ModelChoice.bgnbd else ParetoNBD()


def _fit_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """Customers with T > 0: one whose first purchase is on the calibration end day carries no information yet."""
    return summary[summary["T"] > 0]


def _spend_rows(summary: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(frequency, monetary_value) for Gamma-Gamma; repeat buyers with no positive spend count as having none."""
    import numpy as np

    x = summary["frequency"].to_numpy(dtype=float)
    m = summary["monetary_value"].to_numpy(dtype=float)
    usable = (x > 0) & (m > 0)
    return np.where(usable, x, 0.0), np.where(usable, m, 0.0)


def _fit_spend(summary: pd.DataFrame) -> GammaGamma:
    from cxlens.clv import GammaGamma

    x, m = _spend_rows(summary)
    return GammaGamma().fit({"frequency": x, "monetary_value": m})


def _model_json(model: CLVModel) -> dict[str, Any]:
    return {"params": model.params_, "standard_errors": model.standard_errors_, "log_likelihood": model.log_likelihood_,
            "customers": model.n_customers_}


def _holdout(model: CLVModel, summary: pd.DataFrame) -> dict[str, Any]:
    """Predicted vs actual repeat purchases in the holdout, in total and per calibration frequency."""
    predicted = model.expected_purchases(summary["duration_holdout"], summary["frequency"], summary["recency"], summary["T"])  # type: ignore[attr-defined]
    actual = summary["frequency_holdout"].to_numpy(dtype=float)
    bucket = summary["frequency"].clip(upper=7).to_numpy()
    rows = []
    for k, label in enumerate(BUCKETS):
        mask = bucket == k
        rows.append({"frequency": label, "customers": int(mask.sum()), "actual": float(actual[mask].sum()),
                     "predicted": float(predicted[mask].sum())})
    return {"duration": float(summary["duration_holdout"].iloc[0]), "actual": float(actual.sum()),
            "predicted": float(predicted.sum()), "by_frequency": rows}


@clv_app.command("fit")
def fit_command(
    ctx: typer.Context,
    model: Annotated[ModelChoice, MODEL_OPTION] = ModelChoice.bgnbd,
    spend: Annotated[SpendChoice, typer.Option("--spend", help="Spend model: gamma-gamma, or none.")] = SpendChoice.gamma_gamma,
    calibration_end: Annotated[str | None, typer.Option("--calibration-end", help="Fit on orders up to this date (YYYY-MM-DD); later orders are the holdout.")] = None,
    unit: Annotated[UnitChoice, UNIT_OPTION] = UnitChoice.W,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
) -> None:
    """Fit a purchase model (and a spend model) on the workspace's orders: parameters, standard errors, log-likelihood.

    Orders are valid orders with a resolved profile; several orders of a customer on one day are
    one purchase. With --calibration-end the models are fitted on the orders up to that day and
    the predicted repeat purchases after it are compared with the actual ones, in total and per
    number of repeat purchases in calibration (0 .. 7+).

    Examples:

      cxlens clv fit

      cxlens clv fit --model pareto-nbd --calibration-end 2025-09-30 --format json
    """
    from cxlens.clv.summary import rfm_summary

    with open_workspace(ctx) as ws:
        summary = rfm_summary(ws, calibration_end=calibration_end, unit=unit.value)  # type: ignore[arg-type]
    rows = _fit_rows(summary)
    purchases = _purchase_model(model).fit(rows)
    spend_model = _fit_spend(rows) if spend is SpendChoice.gamma_gamma else None
    holdout = _holdout(purchases, rows) if calibration_end is not None else None
    if format is Format.json:
        print_json({"model": model.value, **_model_json(purchases), "unit": unit.value,
                    "spend": None if spend_model is None else {"model": spend.value, **_model_json(spend_model)},
                    "holdout": holdout})
        return
    for name, fitted in ((model.value, purchases), (spend.value, spend_model)):
        if fitted is None:
            continue
        frame = fitted.summary_frame()
        print_rows([{"parameter": p, "estimate": float(r["coef"]), "std. error": float(r["se"]),
                     "95% interval": f"{r['lower 95%']:.4g} .. {r['upper 95%']:.4g}"} for p, r in frame.iterrows()],
                   title=f"{name}: {fitted.n_customers_:,} customers, log-likelihood {fitted.log_likelihood_:,.2f}")
    if holdout is not None:
        print_rows([{"calibration repeat purchases": r["frequency"], "customers": r["customers"],
                     "actual": r["actual"], "predicted": r["predicted"]} for r in holdout["by_frequency"]],
                   title=f"Holdout ({holdout['duration']:g} {unit.value}): actual {holdout['actual']:,.0f}, "
                         f"predicted {holdout['predicted']:,.1f} repeat purchases")


def parse_horizon(text: str, unit: str) -> float:
    """A horizon such as 52w, 90d or 12m as a number of `unit`s; a month is the Gamma-Gamma month of that unit."""
    from cxlens.clv.gammagamma import _PER_MONTH
    from cxlens.clv.summary import DAYS_PER_UNIT

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([wdmWDM])\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise UsageError(f"--horizon {text!r} is not a duration; write a positive number of weeks, days or months, e.g. 52w, 90d or 12m.")
    n, kind = float(match.group(1)), match.group(2).lower()
    if kind == "m":
        return n * _PER_MONTH[unit]
    return n * (7.0 if kind == "w" else 1.0) / DAYS_PER_UNIT[unit]


def horizon_clv(spend_model: GammaGamma, purchases: CLVModel, summary: pd.DataFrame, horizon: float, *,
                discount_rate: float, unit: str) -> np.ndarray:
    """Discounted value over `horizon` units: sum over months i of spend x purchases in month i / (1+d)^i.

    The same sum as lifetimes' customer_lifetime_value (GammaGamma.clv), with the last month cut at
    the horizon when it is not a whole number of months.
    """
    import numpy as np

    from cxlens.clv.gammagamma import _PER_MONTH

    x, m = _spend_rows(summary)
    spend = spend_model.conditional_expected_spend(x, m)
    args = (summary["frequency"], summary["recency"], summary["T"])
    month = _PER_MONTH[unit]
    value = np.zeros(len(summary))
    previous = np.zeros(len(summary))
    for i in range(1, math.ceil(horizon / month - 1e-9) + 1):
        cumulative = purchases.expected_purchases(min(i * month, horizon), *args)  # type: ignore[attr-defined]
        value += spend * (cumulative - previous) / (1 + discount_rate) ** i
        previous = cumulative
    return value


@clv_app.command("predict")
def predict_command(
    ctx: typer.Context,
    horizon: Annotated[str, typer.Option("--horizon", help="How far ahead: weeks, days or months, e.g. 52w, 90d, 12m.")] = "52w",
    model: Annotated[ModelChoice, MODEL_OPTION] = ModelChoice.bgnbd,
    discount_rate: Annotated[float, typer.Option("--discount-rate", help="Discount rate per month for CLV.")] = 0.01,
    unit: Annotated[UnitChoice, UNIT_OPTION] = UnitChoice.W,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
) -> None:
    """Predict per customer: purchases over the horizon, P(alive), spend per purchase and CLV; saved to `clv_predictions`.

    Fits the purchase model and Gamma-Gamma on all valid orders, then replaces the rows of the
    workspace table clv_predictions (profile_id, model, horizon, expected_purchases, p_alive,
    expected_spend, clv, predicted_at) in one step. expected_spend is the expected spend per
    purchase; clv is discounted monthly (lifetimes' convention). Customers whose first purchase is
    on the last order day are not predicted yet.

    Examples:

      cxlens clv predict

      cxlens clv predict --horizon 12m --model pareto-nbd --discount-rate 0.01 --format json
    """
    import numpy as np
    import pandas as pd

    from cxlens.clv.summary import rfm_summary

    if not (math.isfinite(discount_rate) and discount_rate > -1):
        raise UsageError(f"--discount-rate {discount_rate!r} is not a rate above -1 per month.")
    t = parse_horizon(horizon, unit.value)
    with open_workspace(ctx) as ws:
        summary = _fit_rows(rfm_summary(ws, unit=unit.value))  # type: ignore[arg-type]
        purchases = _purchase_model(model).fit(summary)
        spend_model = _fit_spend(summary)
        args = (summary["frequency"], summary["recency"], summary["T"])
        x, m = _spend_rows(summary)
        out = pd.DataFrame({
            "profile_id": summary["profile_id"].astype(str).to_numpy(),
            "model": model.value,
            "horizon": horizon.strip().lower(),
            "expected_purchases": purchases.expected_purchases(t, *args),  # type: ignore[attr-defined]
            "p_alive": purchases.probability_alive(*args),  # type: ignore[attr-defined]
            "expected_spend": spend_model.conditional_expected_spend(x, m),
            "clv": horizon_clv(spend_model, purchases, summary, t, discount_rate=discount_rate, unit=unit.value),
            "predicted_at": pd.Timestamp(datetime.now(UTC).replace(tzinfo=None)).floor("us"),
        })
        with ws.transaction():
            ws.backend.replace_table(PREDICTIONS_TABLE, out)
    top = out.sort_values(["clv", "profile_id"], ascending=[False, True]).head(10)
    totals = {"customers": len(out), "expected_purchases": float(out["expected_purchases"].sum()),
              "clv": float(out["clv"].sum()), "mean_clv": float(out["clv"].mean()),
              "mean_p_alive": float(out["p_alive"].mean())}
    if format is Format.json:
        print_json({"model": model.value, "horizon": horizon, "horizon_units": t, "unit": unit.value,
                    "discount_rate": discount_rate, "table": PREDICTIONS_TABLE, "summary": totals,
                    "top": [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in r.items() if k != "predicted_at"}
                            for r in top.to_dict("records")]})
        return
    print_rows([{"profile": r["profile_id"], "expected purchases": r["expected_purchases"], "P(alive)": r["p_alive"],
                 "spend/purchase": r["expected_spend"], "CLV": r["clv"]} for r in top.to_dict("records")],
               title=f"Top {len(top)} customers by CLV over {horizon} ({model.value} + gamma-gamma)")
    console.print(f"{totals['customers']:,} customers written to {PREDICTIONS_TABLE}: {totals['expected_purchases']:,.1f} "
                  f"expected purchases, total CLV {totals['clv']:,.2f} (mean {totals['mean_clv']:,.2f}), "
                  f"mean P(alive) {totals['mean_p_alive']:.2f}.")


def register(app: typer.Typer) -> None:
    app.add_typer(clv_app, name="clv")
