"""Exports of the systems that know customers and sales: CRM, web shop, POS, loyalty, memberships.

Each keeps its vendor's own column names, ids and date formats; the mapping beside it tells
`cxlens ingest` how to read it.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cxlens.simulate import catalog as cat
from cxlens.simulate.config import DAY
from cxlens.simulate.formats import concat, format_time, padded, to_objects
from cxlens.simulate.writer import DirtSpec, Export
from cxlens.simulate.world import World

ISO = "%Y-%m-%d %H:%M:%S"
ISO_Z = "%Y-%m-%dT%H:%M:%SZ"
MDY = "%m/%d/%Y %H:%M"
DMY = "%d/%m/%Y"
POS_TIME = "%Y%m%d %H:%M:%S"
LOYALTY_TIME = "%d.%m.%Y %H:%M:%S"


def _slice(values: np.ndarray, start: int, stop: int) -> np.ndarray:
    return to_objects(pc.utf8_slice_codeunits(pa.array(values.astype(str)), start, stop))


def phone_styles(rng: np.random.Generator, digits: np.ndarray, styles: tuple[int, ...]) -> np.ndarray:
    """National numbers written the ways people type them: +1 (555) 010-2345, 555.010.2345, 0015550102345, 555-010-2345."""
    a, b, c = _slice(digits, 0, 3), _slice(digits, 3, 6), _slice(digits, 6, 10)
    forms = [concat("+1 (", a, ") ", b, "-", c), concat(a, ".", b, ".", c), concat("001", digits), concat(a, "-", b, "-", c)]
    style = np.asarray(styles)[rng.integers(0, len(styles), digits.size)]
    out = np.select([style == k for k in range(4)], forms, default=None).astype(object)
    out[digits == ""] = None
    return out


def crm_customers(w: World, rng: np.random.Generator) -> Export:
    """The CRM: one row per customer, with contact details typed by hand (mixed case, spaces)."""
    p, n = w.people, w.people.n_customers
    email = p.email[:n].copy()
    r = rng.random(n)
    mixed = (r < 0.10) & ~p.shared_email
    email[mixed] = np.char.title(email[mixed].astype(str)).astype(object)
    spaced = (r > 0.95) & ~p.shared_email
    email[spaced] = concat(" ", email[spaced], " ")
    city = np.asarray(cat.CITIES, dtype=object)
    tier = np.where(~p.member, None, np.where(p.segment == 2, "Gold", np.where(rng.random(n) < 0.3, "Silver", "Bronze")))
    subscriber = np.zeros(n, dtype=bool)
    subscriber[w.subscriptions.person] = True
    protect = (p.phone != "") | p.member | subscriber | p.shared_email
    cols = {
        "CustomerNo": p.crm_id, "EMail": email, "Phone": phone_styles(rng, p.phone, (0, 1, 2)),
        "LoyaltyCard": np.where(p.member, p.loyalty_id, None), "FirstName": p.first_name, "LastName": p.last_name,
        "City": city[p.city, 0], "State": city[p.city, 1], "Country": np.full(n, "US", dtype=object),
        "Zip": city[p.city, 2], "Gender": p.gender,
        "DateOfBirth": np.datetime_as_string(p.birth_date, unit="D").astype(object),
        "SignupDate": format_time(w.cfg, p.signup_t, DMY), "LoyaltyMember": np.where(p.member, "Y", "N").astype(object),
        "Tier": tier.astype(object), "AcquiredVia": p.acquisition, "AcqCost": p.acquisition_cost,
    }
    mapping = {
        "customer_id": "CustomerNo", "email": "EMail", "phone": "Phone", "loyalty_id": "LoyaltyCard",
        "first_name": "FirstName", "last_name": "LastName", "city": "City", "region": "State", "country": "Country",
        "postal_code": "Zip", "gender": "Gender", "birth_date": "DateOfBirth",
        "signup_at": {"column": "SignupDate", "format": DMY}, "loyalty_member": "LoyaltyMember",
        "loyalty_tier": "Tier", "acquisition_channel": "AcquiredVia", "acquisition_cost": "AcqCost",
    }
    dirt = (
        DirtSpec("customer_id", "CustomerNo", "missing_required", (None,)),
        DirtSpec("birth_date", "DateOfBirth", "bad_date", ("1985-13-45", "not a date")),
        DirtSpec("signup_at", "SignupDate", "bad_timestamp", ("45/13/2024", "yesterday")),
        DirtSpec("loyalty_member", "LoyaltyMember", "bad_boolean", ("maybe",)),
        DirtSpec("acquisition_cost", "AcqCost", "bad_number", ("12,3x", "4.5.6")),
    )
    return Export("crm_customers.csv", "customers", "crm", cols, mapping, np.arange(n), dirt=dirt,
                  duplicate_rate=0.003, protect=protect)


def webshop_accounts(w: World, rng: np.random.Generator) -> Export:
    """The web shop's account table: its own ids, the login email, when the account was made."""
    p = w.people
    idx = np.flatnonzero(p.has_account[: p.n_customers])
    idx = idx[np.argsort(p.webshop_id[idx].astype(str), kind="stable")]
    cols = {
        "AccountId": p.webshop_id[idx], "Email": p.email[idx], "CreatedAt": format_time(w.cfg, p.account_t[idx], ISO_Z),
        "FirstName": p.first_name[idx], "LastName": p.last_name[idx],
        "Newsletter": np.where(p.email_optin[idx], "true", "false").astype(object),
    }
    mapping = {"customer_id": "AccountId", "email": "Email", "signup_at": "CreatedAt", "first_name": "FirstName",
               "last_name": "LastName"}
    return Export("webshop_accounts.csv", "customers", "webshop", cols, mapping, idx, duplicate_rate=0.003)


def webshop_orders(w: World, rng: np.random.Generator) -> Export:
    """Order headers of the web shop (its account ids, US-style timestamps, capitalized statuses)."""
    o, p, s = w.online, w.people, w.sessions
    camp = s.campaign[o.session]
    cols = {
        "OrderNo": w.online_ids, "AccountRef": p.webshop_id[o.person], "CustomerEmail": p.email[o.person],
        "Placed": format_time(w.cfg, o.t, MDY),
        "Platform": np.where(p.device_app[np.maximum(s.device[o.session], 0)], "app", "web").astype(object),
        "Currency": np.full(o.t.size, "USD", dtype=object), "Subtotal": o.gross, "DiscountAmt": o.discount,
        "Total": o.revenue, "CostOfGoods": o.cost, "CouponCode": o.coupon, "Items": o.items,
        "OrderStatus": np.char.capitalize(o.status.astype(str)).astype(object),
        "CampaignRef": np.where(camp >= 0, w.campaigns.campaign_id[np.maximum(camp, 0)], None),
    }
    mapping = {
        "order_id": "OrderNo", "customer_id": "AccountRef", "ordered_at": {"column": "Placed", "format": MDY},
        "revenue": "Total", "channel": {"expr": "CASE WHEN Platform = 'app' THEN 'app' ELSE 'online' END"},
        "currency": "Currency", "discount": "DiscountAmt", "cost": "CostOfGoods", "coupon_code": "CouponCode",
        "items_count": "Items", "status": "OrderStatus", "campaign_id": "CampaignRef", "email": "CustomerEmail",
    }
    dirt = (
        DirtSpec("order_id", "OrderNo", "missing_required", (None,)),
        DirtSpec("ordered_at", "Placed", "bad_timestamp", ("13/45/2025 25:61", "not a date")),
        DirtSpec("revenue", "Total", "bad_number", ("12,3x", "4.5.6")),
        DirtSpec("status", "OrderStatus", "unknown_value", ("Lost", "On hold")),
        DirtSpec("items_count", "Items", "bad_integer", ("two", "3 pcs")),
    )
    return Export("webshop_orders.csv", "orders", "webshop", cols, mapping, o.person, dirt=dirt, duplicate_rate=0.003)


def webshop_order_items(w: World, rng: np.random.Generator) -> Export:
    """The web shop's order lines (a separate export; identical lines are real repeat scans)."""
    o, c = w.online, w.catalog
    line_no = np.arange(o.line_order.size) - np.repeat(np.cumsum(np.bincount(o.line_order, minlength=o.t.size)) -
                                                        np.bincount(o.line_order, minlength=o.t.size), np.bincount(o.line_order, minlength=o.t.size)) + 1
    cols = {
        "OrderNo": w.online_ids[o.line_order], "LineNo": line_no, "SKU": c.sku[o.line_product],
        "ProductName": c.name[o.line_product], "Category": c.category[o.line_product], "Qty": o.line_qty,
        "UnitPrice": o.line_price, "ListPrice": o.line_list_price,
    }
    mapping = {"order_id": "OrderNo", "product_id": "SKU", "quantity": "Qty", "unit_price": "UnitPrice",
               "category": "Category", "product_name": "ProductName"}
    return Export("webshop_order_items.csv", "order_items", "webshop", cols, mapping, np.full(o.line_order.size, -1))


def pos_lines(w: World, rng: np.random.Generator) -> Export:
    """Till export: one line per article with the receipt's totals repeated; ';'-separated, gzip."""
    o, c, p = w.store, w.catalog, w.people
    lo = o.line_order
    counts = np.bincount(lo, minlength=o.t.size)
    line_no = np.arange(lo.size) - np.repeat(np.cumsum(counts) - counts, counts) + 1
    card = np.where(o.loyalty_presented, p.loyalty_id[np.maximum(o.person, 0)], None)
    cols = {
        "ReceiptNo": w.store_ids[lo], "StoreNo": c.store_id[o.store[lo]], "Till": (1 + o.store[lo] % 3),
        "TxnType": np.where(o.status[lo] == "returned", "RETURN", "SALE").astype(object),
        "TxnTime": format_time(w.cfg, o.t, POS_TIME)[lo], "LoyaltyCard": card[lo], "LineNo": line_no,
        "ArticleNo": c.sku[o.line_product], "ArticleName": c.name[o.line_product],
        "Category": c.category[o.line_product], "Qty": o.line_qty, "UnitPrice": o.line_price,
        "ListPrice": o.line_list_price, "ReceiptItems": o.items[lo], "ReceiptDiscount": o.discount[lo],
        "ReceiptTotal": o.revenue[lo], "ReceiptCost": o.cost[lo], "CouponCode": o.coupon[lo],
        "Currency": np.full(lo.size, "USD", dtype=object),
    }
    mapping = {
        "order_id": "ReceiptNo", "ordered_at": {"column": "TxnTime", "format": POS_TIME}, "revenue": "ReceiptTotal",
        "channel": {"expr": "'store'"}, "store_id": "StoreNo", "currency": "Currency", "discount": "ReceiptDiscount",
        "cost": "ReceiptCost", "coupon_code": "CouponCode", "items_count": "ReceiptItems",
        "status": {"expr": "CASE WHEN TxnType = 'RETURN' THEN 'returned' ELSE 'completed' END"},
        "loyalty_id": "LoyaltyCard", "product_id": "ArticleNo", "quantity": "Qty", "unit_price": "UnitPrice",
        "category": "Category", "product_name": "ArticleName",
    }
    person = np.where(o.loyalty_presented, o.person, -1)[lo]
    return Export("pos_lines.csv.gz", "order_lines", "pos", cols, mapping, person, fmt="csv.gz", delimiter=";")


def loyalty_events(w: World, rng: np.random.Generator) -> Export:
    """The loyalty platform's log: enrolments and loyalty-coupon redemptions at the till."""
    p, o = w.people, w.store
    members = np.flatnonzero(p.member)
    enrol_t = np.minimum(p.enrolled_t[members], w.cfg.horizon - DAY)
    red = np.flatnonzero(o.loyalty_presented & (o.coupon == "LOYALTY10"))
    person = np.concatenate([members, o.person[red]])
    t = np.concatenate([np.floor(enrol_t), o.t[red]])
    order = np.lexsort((person, t))
    n_m = members.size
    action = np.where(np.arange(person.size) < n_m, "ENROLL", "REDEEM").astype(object)[order]
    store = np.concatenate([np.where(p.home_store[members] >= 0, w.catalog.store_id[np.maximum(p.home_store[members], 0)], "WEB"),
                            w.catalog.store_id[o.store[red]]])[order]
    cols = {
        "CardNumber": p.loyalty_id[person[order]], "Action": action,
        "ActionTime": format_time(w.cfg, t[order], LOYALTY_TIME), "Store": store.astype(object),
        "CouponCode": np.concatenate([np.full(n_m, None, dtype=object), o.coupon[red]])[order],
        "ReceiptNo": np.concatenate([np.full(n_m, None, dtype=object), w.store_ids[red]])[order],
        "Points": np.concatenate([np.full(n_m, 100), -np.full(red.size, 500)])[order],
    }
    mapping = {
        "occurred_at": {"column": "ActionTime", "format": LOYALTY_TIME},
        "event_type": {"expr": "CASE Action WHEN 'ENROLL' THEN 'loyalty_enrolled' WHEN 'REDEEM' THEN 'coupon_redeemed' ELSE lower(Action) END"},
        "channel": {"expr": "'store'"}, "loyalty_id": "CardNumber",
    }
    dirt = (DirtSpec("occurred_at", "ActionTime", "bad_timestamp", ("31.13.2025 10:00:00", "n.a.")),)
    return Export("loyalty_events.csv", "events", "loyalty", cols, mapping, person[order], dirt=dirt,
                  duplicate_rate=0.003)


def subscriptions(w: World, rng: np.random.Generator) -> Export:
    """Paid memberships, keyed by CRM customer number."""
    s, p = w.subscriptions, w.people
    cols = {
        "MembershipId": padded("M", np.arange(1, s.person.size + 1), 6), "CustomerNo": p.crm_id[s.person],
        "Plan": s.plan, "StartDate": format_time(w.cfg, s.start_t, "%Y-%m-%d"),
        "EndDate": format_time(w.cfg, s.end_t, "%Y-%m-%d"), "MonthlyFee": s.mrr,
    }
    mapping = {"subscription_id": "MembershipId", "customer_id": "CustomerNo",
               "started_at": {"column": "StartDate", "format": "%Y-%m-%d"},
               "ended_at": {"column": "EndDate", "format": "%Y-%m-%d"}, "plan": "Plan", "mrr": "MonthlyFee"}
    dirt = (DirtSpec("mrr", "MonthlyFee", "bad_number", ("9,99x",)),)
    return Export("subscriptions.csv", "subscriptions", "crm", cols, mapping, s.person, dirt=dirt)
