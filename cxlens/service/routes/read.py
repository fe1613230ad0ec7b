"""Read API (read keys): metrics with the `cxlens metrics` JSON contracts, and profiles."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from cxlens.errors import NotFoundError, UsageError
from cxlens.service.auth import require, runtime
from cxlens.service.keys import KeyRecord

router = APIRouter(prefix="/v1", tags=["read"])

Grain = Literal["day", "week", "month", "quarter", "year", "all"]
Reader = Annotated[KeyRecord, Depends(require("read"))]
EMAIL = re.compile(r"[^\s@:,;<>\"']+@[^\s@:,;<>\"']+")


def catalog(request: Request) -> Any:
    """The catalogue of the served workspace: built-in metrics plus its definitions file, kept by
    the app until the file changes; the read API and the dashboard share it, read-only."""
    from cxlens.semantic.registry import KeptCatalogs, definitions_path

    kept = getattr(request.app.state, "catalogs", None)
    if kept is None:
        kept = request.app.state.catalogs = KeptCatalogs()
    return kept.get(definitions_path(runtime(request).settings.workspace))


@router.get("/metrics")
def list_metrics(request: Request, key: Reader,
                 category: Annotated[str | None, Query(max_length=64)] = None) -> dict[str, Any]:
    """Every metric (the `cxlens metrics list --format json` contract)."""
    from cxlens.semantic.listing import metrics_json

    return metrics_json(catalog(request), category)


@router.get("/metrics/{metric_id}")
def show_metric(
    request: Request,
    metric_id: str,
    key: Reader,
    grain: Annotated[Grain | None, Query(description="Period; default the metric's own.")] = None,
    by: Annotated[list[str], Query(max_length=64, description="Dimensions to cut by; repeat or separate with commas.")] = [],  # noqa: B006 - FastAPI copies it
    since: Annotated[str | None, Query(max_length=32, description="First day, YYYY-MM-DD.")] = None,
    until: Annotated[str | None, Query(max_length=32, description="Last day, YYYY-MM-DD.")] = None,
    where: Annotated[str | None, Query(max_length=1000, description="A segment name or a condition over profile features.")] = None,
) -> dict[str, Any]:
    """One metric by period and dimension (the `cxlens metrics show --format json` contract)."""
    from cxlens.semantic import measure

    options = {"grain": grain, "by": names(by, "by"), "since": since, "until": until, "where": where,
               "catalog": known_metric(request, metric_id)}
    return runtime(request).read(call_json, measure, (metric_id,), options)


# What endpoints run on the workspace through Runtime.read (in the loader's process): module-level
# functions, so they pickle.

def call(ws: Any, fn: Callable[..., Any], args: tuple[Any, ...], options: dict[str, Any]) -> Any:
    """`fn(ws, *args, **options)`."""
    return fn(ws, *args, **options)


def call_json(ws: Any, fn: Callable[..., Any], args: tuple[Any, ...], options: dict[str, Any]) -> Any:
    """`fn(ws, *args, **options).to_json()`: most analyses' results carry their JSON contract."""
    return fn(ws, *args, **options).to_json()


def known_metric(request: Request, metric_id: str) -> Any:
    """The catalogue, once `metric_id` is known to be in it (404 otherwise)."""
    cat = catalog(request)
    if metric_id not in cat.metrics:
        raise NotFoundError(f"There is no metric {metric_id[:64]!r}; GET /v1/metrics lists them all.")
    return cat


def names(values: list[str], field: str) -> list[str]:
    """Repeated or comma-separated names of a query parameter; a name longer than 128 characters is a 422
    naming the parameter (no id is that long, and the sentence would otherwise echo it)."""
    out = [d.strip() for v in values for d in v.split(",") if d.strip()]
    if any(len(d) > 128 for d in out):
        raise HTTPException(422, f"The query parameter `{field}` holds a name longer than 128 characters.")
    return out


@router.get("/profiles/{identifier}")
def show_profile(request: Request, identifier: str, key: Reader,
                 limit: Annotated[int, Query(ge=0, le=10_000)] = 50) -> dict[str, Any]:
    """One unified profile, its identifiers and timeline (the `cxlens profile --format json` contract).

    Email addresses and phone numbers are masked unless the key was created with `--pii`.
    """
    if len(identifier) > 256:
        raise UsageError("The profile identifier is longer than 256 characters.")
    return profile_document(request, identifier, limit or None, pii=key.pii)


def profile_document(request: Request, identifier: str, limit: int | None, *, pii: bool,
                     urgent: bool = False) -> dict[str, Any]:
    """Profile card, identifiers and timeline as JSON values; email and phone masked unless `pii`
    (the read API and the dashboard's customer page show the same document; the page is `urgent`:
    see Runtime.read)."""
    card, timeline = runtime(request).read(_profile, identifier, limit, urgent=urgent)
    ids = card.pop("identifiers")
    out = {"profile": card, "identifiers": ids, "timeline": timeline.astype(object).where(timeline.notna(), None).to_dict("records")}
    if pii:
        return out
    secrets = sorted({str(i["value"]) for i in ids if i["type"] in ("email", "phone") and i["value"]}, key=len, reverse=True)
    return _masked(out, secrets)


def _profile(ws: Any, identifier: str, limit: int | None) -> tuple[dict[str, Any], Any]:
    from cxlens.profiles import find_profile, profile_card, profile_timeline

    profile_id = find_profile(ws, identifier)
    return profile_card(ws, profile_id), profile_timeline(ws, profile_id, limit)


def mask(text: str) -> str:
    """'ann@example.com' -> 'a***@example.com'; other values keep their last two characters."""
    if "@" in text:
        local, _, domain = text.partition("@")
        return f"{local[:1]}***@{domain}"
    return "***" + text[-2:] if len(text) > 4 else "***"


def _masked(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, dict):
        return {k: _masked(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v, secrets) for v in value]
    if isinstance(value, str):
        for s in secrets:
            if s in value:
                value = value.replace(s, mask(s))
        return EMAIL.sub(lambda m: mask(m.group(0)), value)
    return value
