"""The built-in dimensions: row columns of the semantic sources, and profile attributes.

Profile dimensions come from one engine-side table, one row per profile, built from the
`customers` records (the greatest non-null value per profile, so the answer does not depend on
row order) and the profile's first valid order (its cohort month).
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from cxlens.semantic.model import Dimension
from cxlens.semantic.sources import Context, valid_orders

PROFILE_ATTRIBUTES: tuple[str, ...] = (
    "country", "region", "city", "gender", "loyalty_member", "loyalty_tier", "acquisition_channel",
)


def _row(id: str, label: str, description: str, **columns: str) -> Dimension:
    return Dimension(id=id, label=label, description=description, columns=tuple(columns.items()))


def _profile(id: str, label: str, description: str) -> Dimension:
    return Dimension(id=id, label=label, description=description, profile=id)


BUILT_IN_DIMENSIONS: tuple[Dimension, ...] = (
    _row("channel", "Channel", "Where it happened: orders online/store/app/phone, event and contact channels.",
         orders="channel", order_outcomes="channel", events="channel", sessions="channel", surveys="channel",
         interactions="channel", cases="channel", acquisition_costs="channel", cohorts="channel", retention="channel"),
    _row("channel_group", "Channel group", "Traffic grouping of a session: paid, email, social, organic, referral, direct.",
         sessions="channel_group"),
    _row("traffic_source", "Traffic source", "utm_source, else the referrer's host, else (direct).", sessions="traffic_source"),
    _row("utm_campaign", "UTM campaign", "utm_campaign of the session's first event.", sessions="utm_campaign",
         events="utm_campaign"),
    _row("device", "Device", "properties.device of the session's first event.", sessions="device"),
    _row("store", "Store", "store_id of a store order or door counter.", orders="store_id", order_outcomes="store_id",
         store_traffic="store_id", cohorts="store_id", retention="store_id"),
    _row("campaign", "Campaign", "campaign_id of an order or a message event.", orders="campaign_id",
         order_outcomes="campaign_id", events="campaign_id", cohorts="campaign_id", retention="campaign_id",
         acquisition_costs="campaign_id"),
    _row("content", "Content", "content_id of a message or recommendation event.", events="content_id"),
    _row("personalized", "Personalized", "Whether the message or recommendation was personalized.", events="personalized"),
    _row("variant", "Variant", "variant of an event (experiments, content versions).", events="variant"),
    _row("topic", "Topic", "Topic of a support case (its first contact).", cases="topic", interactions="topic"),
    _row("touchpoint", "Touchpoint", "The touchpoint a survey asked about.", surveys="touchpoint"),
    _row("survey_channel", "Survey channel", "Channel a survey was answered in.", surveys="channel"),
    _profile("country", "Country", "Customer country (CRM)."),
    _profile("region", "Region", "Customer region (CRM)."),
    _profile("city", "City", "Customer city (CRM)."),
    _profile("gender", "Gender", "Customer gender (CRM)."),
    _profile("loyalty_member", "Loyalty member", "Whether the customer is a loyalty member."),
    _profile("loyalty_tier", "Loyalty tier", "Loyalty tier (CRM)."),
    _profile("acquisition_channel", "Acquisition channel", "Channel the customer was acquired through (CRM)."),
    _profile("cohort", "Cohort", "Month of the customer's first valid order, YYYY-MM."),
    _profile("value_class", "Value class", "hvc, lapsing_hvc, emerging_hvc, high_volume or other (`cxlens hvc`; empty before)."),
    _profile("rfm_segment", "RFM segment", "Champions, loyal, at risk, hibernating, ... (`cxlens rfm`; empty before)."),
    Dimension(id="segment", label="Segment", description="Named segments from the definitions file; a profile can be in several."),
)


def profile_attributes(ctx: Context) -> ir.Table:
    """profile_id plus every profile dimension, one row per profile that has any."""
    c = ctx.table("customers")
    c = c.filter(c.profile_id.notnull())
    attrs = c.group_by(c.profile_id).aggregate(**{a: c[a].max() for a in PROFILE_ATTRIBUTES})
    o = valid_orders(ctx)
    o = o.filter(o.profile_id.notnull())
    firsts = o.group_by(o.profile_id).aggregate(first_order=o.ordered_at.min())
    firsts = firsts.select(cohort_profile=firsts.profile_id, cohort=firsts.first_order.strftime("%Y-%m"))
    j = attrs.outer_join(firsts, attrs.profile_id == firsts.cohort_profile)
    j = j.select(profile_id=ibis.coalesce(j.profile_id, j.cohort_profile), **{a: j[a] for a in PROFILE_ATTRIBUTES},
                 cohort=j.cohort)
    return with_customer_value(ctx, j, VALUE_DIMENSIONS)


VALUE_DIMENSIONS: dict[str, str] = {"value_class": "string", "rfm_segment": "string"}
"""Profile dimensions read from `customer_value` (written by `cxlens hvc` / `cxlens rfm`)."""


def _customer_value_columns(ctx: Context) -> frozenset[str] | None:
    """The columns of `customer_value`, None while the table does not exist."""
    try:
        return frozenset(ctx.table("customer_value").columns)
    except Exception:  # noqa: BLE001 - the table does not exist (yet) on this engine
        return None


def with_customer_value(ctx: Context, t: ir.Table, columns: dict[str, str]) -> ir.Table:
    """`t` (one row per profile_id) plus `columns` of `customer_value`; NULL columns of the given
    types while that table does not exist, so definitions using them stay valid before."""
    have = ctx.scalar("customer_value_columns", _customer_value_columns)
    if have is None or not set(columns) <= have:  # type: ignore[operator]
        return t.mutate(**{k: ibis.null(kind) for k, kind in columns.items()})
    value = ctx.table("customer_value")
    value = value.select(_vp=value.profile_id, **{k: value[k] for k in columns}).view()
    t = t.view()
    return t.left_join(value, t.profile_id == value._vp).drop("_vp")
