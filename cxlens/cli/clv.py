"""CLI commands under `cxlens clv`: fit purchase and spend models, predict per-customer value."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cxlens.cli.context import open_workspace
from cxlens.cli.output import Format, console, print_json, print_rows

if TYPE_CHECKING:

    from cxlens.clv import CLVModel

clv_app = typer.Typer(help="Customer lifetime value: fit BG/NBD or Pareto/NBD with Gamma-Gamma spend, predict per customer.",
                      no_args_is_help=True)

FORMAT_OPTION = typer.Option("--format", "-f", help="table (for people) or json (for scripts).")


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


_MOVED = {"_fit_rows": "fit_rows", "_spend_rows": "spend_rows", "_fit_spend": "fit_spend", "_holdout": "holdout_check",
          "horizon_clv": "horizon_clv", "parse_horizon": "parse_horizon", "PREDICTIONS_TABLE": "PREDICTIONS_TABLE",
          "BUCKETS": "BUCKETS"}


def __getattr__(name: str) -> Any:
    """Names that moved to cxlens.clv.workspace (so the report and the value classes compute the
    same numbers as the CLI) stay importable from here, loaded only when asked for."""
    if name in _MOVED:
        from cxlens.clv import workspace

        return getattr(workspace, _MOVED[name])
    raise AttributeError(name)


MARGIN_OPTION = typer.Option("--use-margin", help="Value purchases by margin (revenue - cost) instead of revenue.")


def _model_json(model: CLVModel) -> dict[str, Any]:
    return {"params": model.params_, "standard_errors": model.standard_errors_, "log_likelihood": model.log_likelihood_,
            "customers": model.n_customers_, "warnings": model.warnings_}


@clv_app.command("fit")
def fit_command(
    ctx: typer.Context,
    model: Annotated[ModelChoice, MODEL_OPTION] = ModelChoice.bgnbd,
    spend: Annotated[SpendChoice, typer.Option("--spend", help="Spend model: gamma-gamma, or none.")] = SpendChoice.gamma_gamma,
    calibration_end: Annotated[str | None, typer.Option("--calibration-end", help="Fit on orders up to this date (YYYY-MM-DD); later orders are the holdout.")] = None,
    unit: Annotated[UnitChoice, UNIT_OPTION] = UnitChoice.W,
    use_margin: Annotated[bool, MARGIN_OPTION] = False,
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
    from cxlens.clv.workspace import fit_workspace

    with open_workspace(ctx) as ws:
        fitted = fit_workspace(ws, model=model.value, spend=spend is SpendChoice.gamma_gamma, calibration_end=calibration_end,
                               unit=unit.value, use_margin=use_margin)
    purchases, spend_model, holdout = fitted.purchases, fitted.spend, fitted.holdout
    if format is Format.json:
        print_json({"model": model.value, **_model_json(purchases), "unit": unit.value,
                    "basis": "margin" if use_margin else "revenue",
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
        for warning in fitted.warnings_:
            console.print(f"[yellow]{warning}[/]")
    if holdout is not None:
        print_rows([{"calibration repeat purchases": r["frequency"], "customers": r["customers"],
                     "actual": r["actual"], "predicted": r["predicted"]} for r in holdout["by_frequency"]],
                   title=f"Holdout ({holdout['duration']:g} {unit.value}): actual {holdout['actual']:,.0f}, "
                         f"predicted {holdout['predicted']:,.1f} repeat purchases")


@clv_app.command("predict")
def predict_command(
    ctx: typer.Context,
    horizon: Annotated[str, typer.Option("--horizon", help="How far ahead: weeks, days or months, e.g. 52w, 90d, 12m.")] = "52w",
    model: Annotated[ModelChoice, MODEL_OPTION] = ModelChoice.bgnbd,
    discount_rate: Annotated[float, typer.Option("--discount-rate", help="Discount rate per month for CLV.")] = 0.01,
    unit: Annotated[UnitChoice, UNIT_OPTION] = UnitChoice.W,
    use_margin: Annotated[bool, MARGIN_OPTION] = False,
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
    from cxlens.clv.output import prediction_json
    from cxlens.clv.workspace import PREDICTIONS_TABLE, predict_workspace, save_predictions

    with open_workspace(ctx) as ws:
        prediction = predict_workspace(ws, model=model.value, horizon=horizon, discount_rate=discount_rate, unit=unit.value,
                                       use_margin=use_margin)
        save_predictions(ws, prediction)
    out = prediction_json(prediction)
    if format is Format.json:
        print_json(out)
        return
    top, totals = out["top"], out["summary"]
    print_rows([{"profile": r["profile_id"], "expected purchases": r["expected_purchases"], "P(alive)": r["p_alive"],
                 "spend/purchase": r["expected_spend"], "CLV": r["clv"]} for r in top],
               title=f"Top {len(top)} customers by CLV over {horizon} ({model.value} + gamma-gamma)")
    console.print(f"{totals['customers']:,} customers written to {PREDICTIONS_TABLE}: {totals['expected_purchases']:,.1f} "
                  f"expected purchases, total CLV {totals['clv']:,.2f} (mean {totals['mean_clv']:,.2f}), "
                  f"mean P(alive) {totals['mean_p_alive']:.2f}.")


def register(app: typer.Typer) -> None:
    app.add_typer(clv_app, name="clv")
