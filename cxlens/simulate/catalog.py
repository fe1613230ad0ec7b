"""What the simulated retailer sells and where: product catalogue, stores, cities, names.

A home-and-living retailer with a handful of stores and a web shop; small fixed vocabularies keep
the exports readable while the random draws give them volume.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CATEGORIES: tuple[str, ...] = (
    "Kitchen", "Bedding", "Bath", "Lighting", "Decor", "Furniture", "Garden", "Storage",
)
PRODUCTS_PER_CATEGORY = 25
_CATEGORY_PRICE = (18.0, 45.0, 22.0, 55.0, 25.0, 160.0, 35.0, 28.0)
_ADJECTIVES = ("Classic", "Nordic", "Linen", "Oak", "Velvet", "Stoneware", "Rattan", "Copper", "Cotton",
               "Marble", "Bamboo", "Ceramic", "Wool", "Glass", "Walnut", "Terracotta", "Jute", "Brass",
               "Slate", "Cedar", "Pine", "Silk", "Teak", "Felt", "Porcelain")
_NOUNS = {
    "Kitchen": "mug set", "Bedding": "duvet cover", "Bath": "towel", "Lighting": "table lamp",
    "Decor": "vase", "Furniture": "side table", "Garden": "planter", "Storage": "basket",
}

CITIES: tuple[tuple[str, str, str], ...] = (
    ("New York", "NY", "10001"), ("Brooklyn", "NY", "11201"), ("Boston", "MA", "02108"),
    ("Philadelphia", "PA", "19103"), ("Chicago", "IL", "60601"), ("Austin", "TX", "73301"),
    ("Denver", "CO", "80202"), ("Seattle", "WA", "98101"), ("Portland", "OR", "97201"),
    ("San Diego", "CA", "92101"), ("Atlanta", "GA", "30303"), ("Minneapolis", "MN", "55401"),
)
STORE_CITIES: tuple[int, ...] = (0, 2, 3, 4, 5, 6, 7, 9)
"""Index into CITIES of each store; store k is S0(k+1)."""

FIRST_NAMES_F = ("Ann", "Maria", "Emma", "Olivia", "Sofia", "Grace", "Chloe", "Julia", "Nora", "Lucy",
                 "Hannah", "Zoe", "Mia", "Ella", "Ava", "Leah", "Ruth", "Iris", "Clara", "Eva")
FIRST_NAMES_M = ("John", "David", "Liam", "Noah", "James", "Lucas", "Ethan", "Mateo", "Omar", "Ben",
                 "Samuel", "Leo", "Adam", "Isaac", "Hugo", "Owen", "Felix", "Jonah", "Ravi", "Kenji")
LAST_NAMES = ("Smith", "Johnson", "Garcia", "Miller", "Davis", "Lopez", "Wilson", "Anderson", "Thomas",
              "Moore", "Martin", "Lee", "Perez", "Clark", "Lewis", "Walker", "Young", "Allen", "King",
              "Wright", "Scott", "Green", "Baker", "Nguyen", "Hill", "Adams", "Nelson", "Carter",
              "O'Brien", "Rivera", "Campbell", "Kim", "Patel", "Cohen", "Singh", "Murphy")
EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com")


@dataclass(frozen=True)
class Catalog:
    """Products sorted by price within each category (index = category * 25 + rank)."""

    sku: np.ndarray
    name: np.ndarray
    category: np.ndarray
    category_code: np.ndarray
    price: np.ndarray
    unit_cost: np.ndarray
    store_id: np.ndarray
    store_city: np.ndarray

    @property
    def n_products(self) -> int:
        return len(self.sku)


def build_catalog(rng: np.random.Generator) -> Catalog:
    """A fixed-size catalogue with prices rising with rank inside each category."""
    n_cat = len(CATEGORIES)
    cat = np.repeat(np.arange(n_cat), PRODUCTS_PER_CATEGORY)
    rank = np.tile(np.arange(PRODUCTS_PER_CATEGORY), n_cat)
    base = np.asarray(_CATEGORY_PRICE)[cat]
    price = np.round(base * (0.5 + 2.5 * rank / PRODUCTS_PER_CATEGORY) * rng.uniform(0.95, 1.05, cat.size), 0) - 0.01
    margin = rng.uniform(0.40, 0.65, cat.size)
    sku = np.array([f"SKU-{c + 1}{r:03d}" for c, r in zip(cat, rank)], dtype=object)
    adjective = np.asarray(_ADJECTIVES, dtype=object)[rank % len(_ADJECTIVES)]
    names = np.array(
        [f"{a} {_NOUNS[CATEGORIES[c]]}" + (", large" if r % 3 == 2 else "") for a, c, r in zip(adjective, cat, rank)],
        dtype=object,
    )
    stores = np.array([f"S{k + 1:02d}" for k in range(len(STORE_CITIES))], dtype=object)
    return Catalog(
        sku=sku, name=names, category=np.asarray(CATEGORIES, dtype=object)[cat], category_code=cat,
        price=price, unit_cost=np.round(price * (1 - margin), 2), store_id=stores,
        store_city=np.asarray(STORE_CITIES),
    )
