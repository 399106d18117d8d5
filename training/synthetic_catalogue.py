"""Seeded synthetic catalogue for the synthetic clickstream's items, and graded search labels over it.

Every item of training/synthetic.py's catalogue gets a product: a title made of a brand, a product kind (one per
category, so that search and the clickstream agree on what is alike), a finish and a size, the category id the
events carry, and the item's price. The labels follow the Home Depot layout (product_uid, product_title,
search_term, relevance 1 .. 3), so `streamrec search evaluate` and the tests run on them as on the real file:
a term names a kind with a brand, a finish or a size (and sometimes a typo); the products that match all of it
are rated 3, those of the right kind 2 to 2.33, and a few others 1.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from streamrec.protos import catalog_pb2
from streamrec.training.synthetic import SyntheticConfig, make_catalogue

KINDS = (
    "cordless drill",
    "circular saw",
    "kitchen faucet",
    "toilet seat",
    "interior paint",
    "garden hose",
    "light bulb",
    "ceiling fan",
    "door hinge",
    "wood screws",
    "floor tile",
    "bathroom sink",
    "lawn mower",
    "step ladder",
    "wall shelf",
    "area rug",
    "desk lamp",
    "gas grill",
    "smart thermostat",
    "shop vacuum",
)
BRANDS = ("Dewalt", "Makita", "Bosch", "Ryobi", "Kohler", "Moen", "Behr", "Glacier", "Husky", "Everbilt", "Philips")
FINISHES = ("white", "black", "chrome", "brushed nickel", "oak", "stainless steel", "matte gray", "bronze")
SIZES = ("12 in.", "18 in.", "24 in.", "1/2 in.", "3/4 in.", "50 ft.", "1 gal.", "20-volt", "60-watt", "5-pack")


@dataclass(frozen=True)
class SyntheticProduct:
    product_id: str
    title: str
    brand: str
    category: str  # the category id of the events (c007)
    kind: str
    finish: str
    size: str
    price: float

    def to_product(self, updated_ms: int, available: bool = True) -> catalog_pb2.Product:
        """The record `streamrec catalog publish` would produce for it."""
        return catalog_pb2.Product(
            product_id=self.product_id,
            title=self.title,
            brand=self.brand,
            category=self.category,
            price=self.price,
            available=available,
            updated_ms=updated_ms,
        )


def synthetic_products(config: SyntheticConfig | None = None) -> list[SyntheticProduct]:
    """A product for each item of the synthetic clickstream's catalogue (same ids, categories and prices)."""
    config = config or SyntheticConfig()
    catalogue = make_catalogue(config)
    rng = np.random.default_rng(config.seed + 101)
    products = []
    for index, item in enumerate(catalogue.item_ids):
        category = int(catalogue.category[index])
        kind = KINDS[category % len(KINDS)]
        brand = BRANDS[int(rng.integers(len(BRANDS)))]
        finish = FINISHES[int(rng.integers(len(FINISHES)))]
        size = SIZES[int(rng.integers(len(SIZES)))]
        title = f"{brand} {size} {kind.title()} in {finish.title()}"
        products.append(
            SyntheticProduct(item, title, brand, f"c{category:03d}", kind, finish, size, float(catalogue.price[index]))
        )
    return products


def write_catalogue(path: Path, products: list[SyntheticProduct]) -> Path:
    """The products as a catalogue export (CSV) in `streamrec catalog publish`'s default columns."""
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["product_id", "title", "brand", "category", "price", "available"])
        for p in products:
            writer.writerow([p.product_id, p.title, p.brand, p.category, f"{p.price:.2f}", "true"])
    return path


def _typo(word: str, rng: np.random.Generator) -> str:
    """The word with two neighbouring letters swapped (how "toilet" becomes "toliet")."""
    if len(word) < 5:
        return word
    at = int(rng.integers(1, len(word) - 2))
    return word[:at] + word[at + 1] + word[at] + word[at + 2 :]


def synthetic_labels(products: list[SyntheticProduct], n_terms: int = 200, seed: int = 0) -> pd.DataFrame:
    """Graded judgements in the Home Depot layout for `n_terms` search terms over `products`."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n_terms):
        anchor = products[int(rng.integers(len(products)))]
        extra = ("brand", "finish", "size")[int(rng.integers(3))]
        detail = {"brand": anchor.brand.lower(), "finish": anchor.finish, "size": anchor.size}[extra]
        kind = anchor.kind if rng.random() > 0.2 else " ".join(_typo(w, rng) for w in anchor.kind.split())
        term = f"{detail} {kind}"
        same_kind = [p for p in products if p.kind == anchor.kind]
        exact = [p for p in same_kind if getattr(p, extra) == getattr(anchor, extra)]
        others = [p for p in products if p.kind != anchor.kind]
        judged: dict[str, tuple[SyntheticProduct, float]] = {}
        for p in exact[:3]:
            judged[p.product_id] = (p, 3.0)
        for i in rng.permutation(len(same_kind))[:3]:
            p = same_kind[int(i)]
            judged.setdefault(p.product_id, (p, 2.0 if rng.random() < 0.5 else 2.33))
        for i in rng.permutation(len(others))[:2]:
            p = others[int(i)]
            judged.setdefault(p.product_id, (p, 1.0))
        rows += [(p.product_id, p.title, term, rating) for p, rating in judged.values()]
    frame = pd.DataFrame(rows, columns=["product_uid", "product_title", "search_term", "relevance"])
    frame.insert(0, "id", np.arange(1, len(frame) + 1))
    return frame
