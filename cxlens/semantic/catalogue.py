"""The built-in KPI catalogue, declared as data (definitions in words: docs/metric-definitions.md).

Each entry says what the metric means for people (label, description, unit, direction, leading
or lagging) and how the engine computes it (a measure over a semantic source, or a ratio of two).
docs/metrics.md is generated from these declarations (`python -m cxlens.semantic.docs`).
"""

from __future__ import annotations

from typing import Any

from cxlens.semantic.model import EngagementSettings, Measure, Metric
from cxlens.semantic.sources import engagement_formula

PROFILE_DIMS = ("country", "region", "city", "gender", "loyalty_member", "loyalty_tier", "acquisition_channel", "cohort",
                "segment")


def _metric(id: str, label: str, category: str, description: str, *, unit: str, direction: str, timing: str,
            **rest: Any) -> Metric:
    return Metric(id=id, label=label, description=description, unit=unit, direction=direction,  # type: ignore[arg-type]
                  timing=timing, category=category, **rest)  # type: ignore[arg-type]


def _count(source: str, filter: str | None = None) -> Measure:
    return Measure(source=source, agg="count", filter=filter)


def _events(kind: str) -> Measure:
    return _count("events", f"event_type = '{kind}'")


VALUE = "Value and loyalty"
FEEDBACK = "Feedback"
WEB = "Web and funnel"
MESSAGING = "Messaging"
ENGAGEMENT = "Engagement"
OFFLINE = "Offline"
SERVICE = "Service and effort"

CATALOGUE: tuple[Metric, ...] = (
    # value and loyalty
    _metric("revenue", "Revenue", VALUE, "Sum of revenue of valid orders (completed or no status).",
            unit="currency", direction="up", timing="lagging", measure=Measure("orders", "sum", "revenue"), test="total"),
    _metric("orders", "Orders", VALUE, "Number of valid orders.", unit="count", direction="up", timing="lagging",
            measure=_count("orders"), test="total"),
    _metric("return_rate", "Return rate", VALUE,
            "Share of returned orders among completed and returned orders (cancelled left out).",
            unit="share", direction="down", timing="lagging", measure=Measure("order_outcomes", "mean", "returned"),
            test="proportion"),
    _metric("aov", "Average order value", VALUE, "Mean revenue per valid order.", unit="currency", direction="up",
            timing="lagging", measure=Measure("orders", "mean", "revenue")),
    _metric("active_customers", "Active customers", VALUE, "Distinct customers (profiles) with a valid order.",
            unit="count", direction="up", timing="lagging", measure=Measure("orders", "count", unit="profile_id"),
            test="total"),
    _metric("new_customers", "New customers", VALUE,
            "Customers whose first valid order ever falls in the period (dimensions from that order).",
            unit="count", direction="up", timing="lagging", measure=_count("cohorts"), test="total"),
    _metric("purchase_frequency", "Purchase frequency", VALUE, "Mean number of valid orders per active customer.",
            unit="mean", direction="up", timing="lagging", measure=Measure("orders", "mean", "count(*)", unit="profile_id")),
    _metric("revenue_per_customer", "Revenue per customer", VALUE, "Mean revenue per active customer.",
            unit="currency", direction="up", timing="lagging",
            measure=Measure("orders", "mean", "sum(revenue)", unit="profile_id")),
    _metric("repeat_purchase_rate", "Repeat purchase rate", VALUE,
            "Share of active customers with two or more valid orders in the period.", unit="share", direction="up",
            timing="lagging", measure=Measure("orders", "mean", "CASE WHEN count(*) >= 2 THEN 1 ELSE 0 END",
                                              unit="profile_id"), test="proportion"),
    _metric("retention_rate", "Retention rate", VALUE,
            "Share of customers active in the previous period who are active again; year grain gives YoY, quarter QoQ.",
            unit="share", direction="up", timing="lagging", measure=Measure("retention", "mean", "retained"),
            test="proportion", needs_grain=True),
    _metric("churn_rate", "Churn rate", VALUE,
            "Non-contractual churn: share of customers active in the previous period with no valid order in this one.",
            unit="share", direction="down", timing="lagging", measure=Measure("retention", "mean", "1 - retained"),
            test="proportion", needs_grain=True),
    _metric("subscription_churn_rate", "Subscription churn rate", VALUE,
            "Contractual churn: subscriptions ended in the period / subscriptions active at its start.",
            unit="share", direction="down", timing="lagging", measure=Measure("subscriptions", "mean", "ended"),
            test="proportion", needs_grain=True),
    _metric("customer_lifespan", "Customer lifespan", VALUE,
            "Mean days between first and last valid order, by acquisition cohort (the first order's period).",
            unit="days", direction="up", timing="lagging", measure=Measure("cohorts", "mean", "lifespan_days")),
    _metric("historical_clv", "Historical CLV", VALUE,
            "Mean cumulative margin (revenue where no order has a cost) per customer within the lifespan window "
            "(default 365 days from the first order), by acquisition cohort.",
            unit="currency", direction="up", timing="lagging", measure=Measure("cohorts", "mean", "clv")),
    _metric("cac", "Customer acquisition cost", VALUE,
            "Acquisition costs / new customers; by channel: costs.channel over the new customer's acquisition channel.",
            unit="currency", direction="down", timing="lagging",
            numerator=Measure("acquisition_costs", "sum", "amount"),
            denominator=Measure("cohorts", "count", dimension_columns=(("channel", "profile:acquisition_channel"),)),
            test="none", dimensions=("channel", "campaign")),
    _metric("clv_to_cac", "CLV to CAC", VALUE, "Historical CLV / CAC of the same acquisition period.",
            unit="ratio", direction="up", timing="lagging",
            numerator=Measure("cohorts", "sum", "clv", dimension_columns=(("channel", "profile:acquisition_channel"),)),
            denominator=Measure("acquisition_costs", "sum", "amount"), test="none", dimensions=("channel", "campaign"),
            n_from="numerator"),
    # feedback
    _metric("nps", "Net Promoter Score", FEEDBACK,
            "100 × (promoters − detractors) / NPS answers (promoters 9–10, detractors 0–6); shares reported beside.",
            unit="points", direction="up", timing="leading",
            measure=Measure("surveys", "mean", "nps_y", filter="survey_type = 'nps'"), scale=100.0, test="nps",
            extras=(("promoters", "promoter"), ("passives", "passive"), ("detractors", "detractor"))),
    _metric("csat", "CSAT", FEEDBACK, "Share of CSAT answers scoring 4 or 5 (satisfied).", unit="share",
            direction="up", timing="leading", measure=Measure("surveys", "mean", "satisfied", filter="survey_type = 'csat'"),
            test="proportion"),
    _metric("csat_mean", "CSAT mean", FEEDBACK, "Mean CSAT score (1–5).", unit="score", direction="up", timing="leading",
            measure=Measure("surveys", "mean", "score", filter="survey_type = 'csat'")),
    _metric("ces", "Customer Effort Score", FEEDBACK, "Mean CES score (1–7, higher = easier).", unit="score",
            direction="up", timing="leading", measure=Measure("surveys", "mean", "score", filter="survey_type = 'ces'")),
    _metric("survey_response_rate", "Survey response rate", FEEDBACK,
            "Survey answers / survey invitations (events of type survey_sent).", unit="share", direction="up",
            timing="leading", numerator=_count("surveys"), denominator=_events("survey_sent"), test="proportion",
            dimensions=("channel", *PROFILE_DIMS)),
    # web and funnel
    _metric("sessions", "Sessions", WEB, "Number of web and app sessions (session_id, else 30 minutes of inactivity).",
            unit="count", direction="up", timing="leading", measure=_count("sessions"), test="total"),
    _metric("visitors", "Visitors", WEB, "Distinct visitors with a session.", unit="count", direction="up",
            timing="leading", measure=Measure("sessions", "count", unit="visitor"), test="total"),
    _metric("new_visitor_share", "New visitor share", WEB,
            "Share of visitors whose first session ever is in the period.", unit="share", direction="none",
            timing="leading", measure=Measure("sessions", "mean", "max(new)", unit="visitor"), test="proportion"),
    _metric("returning_visitor_share", "Returning visitor share", WEB,
            "Share of visitors who had a session before the period (1 − new visitor share).", unit="share",
            direction="up", timing="leading", measure=Measure("sessions", "mean", "1 - max(new)", unit="visitor"),
            test="proportion"),
    _metric("bounce_rate", "Bounce rate", WEB, "Share of sessions with exactly one event, a page view.",
            unit="share", direction="down", timing="leading", measure=Measure("sessions", "mean", "bounced"),
            test="proportion"),
    _metric("avg_session_duration", "Average session duration", WEB,
            "Mean seconds between a session's first and last event.", unit="seconds", direction="up", timing="leading",
            measure=Measure("sessions", "mean", "duration")),
    _metric("pages_per_session", "Pages per session", WEB, "Mean page_view and product_view events per session.",
            unit="mean", direction="up", timing="leading", measure=Measure("sessions", "mean", "pages")),
    _metric("conversion_rate", "Conversion rate", WEB, "Share of sessions with a purchase event.", unit="share",
            direction="up", timing="leading", measure=Measure("sessions", "mean", "converted"), test="proportion"),
    _metric("traffic_to_lead_ratio", "Traffic-to-lead ratio", WEB,
            "Share of visitors with a lead or signup event in the period.", unit="share", direction="up",
            timing="leading", measure=Measure("sessions", "mean", "max(lead)", unit="visitor"), test="proportion"),
    _metric("cart_abandonment_rate", "Cart abandonment rate", WEB,
            "Share of sessions with an add_to_cart and no purchase, among sessions with an add_to_cart.",
            unit="share", direction="down", timing="leading",
            measure=Measure("sessions", "mean", "1 - converted", filter="carted = 1"), test="proportion"),
    _metric("revenue_per_visit", "Revenue per visit", WEB, "Mean purchase value per session.", unit="currency",
            direction="up", timing="lagging", measure=Measure("sessions", "mean", "revenue")),
    _metric("traffic_sources", "Traffic sources", WEB,
            "Share of sessions by channel group (or traffic source) within the period.", unit="share",
            direction="none", timing="leading", measure=_count("sessions"), share_over=("channel_group", "traffic_source"),
            test="proportion"),
    # messaging
    _metric("open_rate", "Open rate", MESSAGING, "message_opened / message_sent events.", unit="share",
            direction="up", timing="leading", numerator=_events("message_opened"), denominator=_events("message_sent"),
            test="proportion"),
    _metric("click_through_rate", "Click-through rate", MESSAGING, "message_clicked / message_sent events.",
            unit="share", direction="up", timing="leading", numerator=_events("message_clicked"),
            denominator=_events("message_sent"), test="proportion"),
    _metric("click_to_open_rate", "Click-to-open rate", MESSAGING, "message_clicked / message_opened events.",
            unit="share", direction="up", timing="leading", numerator=_events("message_clicked"),
            denominator=_events("message_opened"), test="proportion"),
    _metric("unsubscribe_rate", "Unsubscribe rate", MESSAGING, "message_unsubscribed / message_sent events.",
            unit="share", direction="down", timing="leading", numerator=_events("message_unsubscribed"),
            denominator=_events("message_sent"), test="proportion"),
    _metric("recommendation_click_through_rate", "Recommendation CTR", MESSAGING,
            "recommendation_clicked / recommendation_shown events.", unit="share", direction="up", timing="leading",
            numerator=_events("recommendation_clicked"), denominator=_events("recommendation_shown"), test="proportion"),
    # engagement
    _metric("engagement_score", "Engagement score", ENGAGEMENT,
            "Mean per-customer score 0–100 weighting recency, visit frequency, depth and message engagement.",
            unit="score", direction="up", timing="leading",
            measure=Measure("activities", "mean", engagement_formula(EngagementSettings()), unit="profile_id"),
            dimensions=PROFILE_DIMS),
    # offline
    _metric("store_sales", "Store sales", OFFLINE, "Revenue of valid orders with channel store.", unit="currency",
            direction="up", timing="lagging", measure=Measure("orders", "sum", "revenue", filter="channel = 'store'"),
            test="total"),
    _metric("store_traffic", "Store traffic", OFFLINE, "Store visitors counted at the door.", unit="count",
            direction="up", timing="leading", measure=Measure("store_traffic", "sum", "visitors"), test="total"),
    _metric("store_conversion_rate", "Store conversion rate", OFFLINE, "Valid store orders / store visitors.",
            unit="share", direction="up", timing="lagging", numerator=_count("orders", "channel = 'store'"),
            denominator=Measure("store_traffic", "sum", "visitors"), test="proportion", dimensions=("store",)),
    _metric("coupon_redemption_rate", "Coupon redemption rate", OFFLINE, "Share of valid orders with a coupon code.",
            unit="share", direction="none", timing="lagging", measure=Measure("orders", "mean", "has_coupon"),
            test="proportion"),
    _metric("loyalty_enrollment_rate", "Loyalty enrollment rate", OFFLINE,
            "Customers with a loyalty_enrolled event / active customers.", unit="share", direction="up",
            timing="leading", numerator=Measure("events", "count", unit="profile_id", filter="event_type = 'loyalty_enrolled'"),
            denominator=Measure("orders", "count", unit="profile_id"), test="proportion", dimensions=PROFILE_DIMS),
    # service and effort
    _metric("contacts_per_customer", "Contacts per customer", SERVICE,
            "Mean support contacts per customer who contacted support.", unit="mean", direction="down",
            timing="leading", measure=Measure("interactions", "mean", "count(*)", unit="profile_id")),
    _metric("first_contact_resolution_rate", "First contact resolution", SERVICE,
            "Share of cases resolved with exactly one contact.", unit="share", direction="up", timing="leading",
            measure=Measure("cases", "mean", "fcr"), test="proportion"),
    _metric("repeat_contact_rate", "Repeat contact rate", SERVICE, "Share of cases with two or more contacts.",
            unit="share", direction="down", timing="leading", measure=Measure("cases", "mean", "repeat"),
            test="proportion"),
    _metric("transfer_rate", "Transfer rate", SERVICE, "Share of contacts transferred at least once.", unit="share",
            direction="down", timing="leading", measure=Measure("interactions", "mean", "transferred"),
            test="proportion"),
    _metric("channel_switch_rate", "Channel switch rate", SERVICE,
            "Share of cases whose contacts span two or more channels.", unit="share", direction="down",
            timing="leading", measure=Measure("cases", "mean", "switched"), test="proportion"),
    _metric("avg_wait_seconds", "Average wait", SERVICE, "Mean wait in seconds over contacts that record one.",
            unit="seconds", direction="down", timing="leading",
            measure=Measure("interactions", "mean", "wait_seconds", filter="wait_seconds IS NOT NULL")),
)
