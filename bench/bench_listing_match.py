# ruff: noqa: RUF001 - lookalike letters are the disguises being measured
"""Listing brand-matching benchmark: the compiled matcher vs a naive rapidfuzz loop.

    python bench/bench_listing_match.py [--listings 3000] [--rounds 5]

Both run in the same process on the same synthetic listings (seeded): 80% generic goods,
10% brand names written plainly, 10% disguised (N1KE, G u c c i, homoglyphs, typos). The
registry is the fixture ``fixtures/brand_registry.yaml``.

* **matcher**: :class:`detectors.listing_match.ListingMatcher`, compiled once, one
  ``match()`` per listing (text, price ratio, image distance, shop) -- what a check runs.
* **naive**: what one writes first: ``normalize_text(title + description)`` and, for every
  brand name, alias and protected term, ``rapidfuzz.fuzz.partial_ratio(term, text) >= 85``
  (text only: no price, image or shop work).

It prints the median and p99 microseconds per listing over all rounds, the ratio, and the
quality of each on the labelled listings: recall on plain and disguised brand names, and
false hits on generic goods.
"""

from __future__ import annotations

import argparse
import platform
import random
import sys
import time
from pathlib import Path
from statistics import median, quantiles

from rapidfuzz import fuzz

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from riskctl.brand_registry import DEFAULT_REGISTRY, compile_registry  # noqa: E402
from riskctl.text import normalize_text  # noqa: E402

GENERIC = [  # (title, category): everyday goods, some with brand-like words
    ("Leather wallet, brown", "accessories"),
    ("Handmade ceramic mug", "home"),
    ("Running shoes for men, breathable mesh", "shoes"),
    ("Stainless steel watch, 40 mm", "watches"),
    ("Polarised sunglasses UV400", "eyewear"),
    ("Cotton hoodie, unisex", "apparel"),
    ("Nice canvas tote bag", "bags"),
    ("Mini keyboard with touchpad", "electronics"),
    ("TV channel remote control", "electronics"),
    ("Carrier bag, reusable", "bags"),
    ("Apple cider vinegar, organic", "grocery"),
    ("Hair dryer 2000 W, ionic", "beauty"),
    ("Phone case, clear silicone", "phones"),
    ("Nikon lens cap 52 mm", "electronics"),
]
DESCRIPTIONS = [
    "Ships in two days. Full refund within 30 days.",
    "Brand new in box, never used. Size chart in the photos; message me with questions.",
    "Great condition, smoke-free home. Dimensions 30 x 20 x 10 cm, weight 350 g.",
]
DISGUISES = {
    "Nike": ["N1KE", "N i k e", "n.i.k.e", "ΝΙΚΕ"],
    "Gucci": ["G u c c i", "ɢucci", "Guchi", "GUCC1", "g.u.c.c.i"],
    "Adidas": ["Аdidas", "4d1d4s", "Adidaz"],
    "Rolex": ["R0L3X", "Rollex", "R-o-l-e-x"],
    "Louis Vuitton": ["Louis Vuiton", "L0uis Vuitt0n", "LouisVuitton"],
    "Chanel": ["Chanell", "CH4NEL", "C h a n e l"],
    "Prada": ["Pr4da", "P r a d a"],
    "Cartier": ["Cartiier", "C4rtier"],
}
CATEGORY = {
    "Nike": "shoes",
    "Gucci": "bags",
    "Adidas": "shoes",
    "Rolex": "watches",
    "Louis Vuitton": "bags",
    "Chanel": "bags",
    "Prada": "bags",
    "Cartier": "jewelry",
}


def listings(n: int, seed: int = 1) -> list[tuple[dict, str]]:
    """(listing, label) with label "" (generic), "plain:<brand>" or "disguised:<brand>"."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        r = rng.random()
        desc = rng.choice(DESCRIPTIONS)
        if r < 0.8:
            (title, category), label = rng.choice(GENERIC), ""
        else:
            brand = rng.choice(sorted(DISGUISES))
            written = brand if r < 0.9 else rng.choice(DISGUISES[brand])
            title = f"{written} {rng.choice(['bag', 'sneakers', 'watch', 'belt', 'wallet'])} #{i}"
            category = CATEGORY[brand]
            label = f"{'plain' if r < 0.9 else 'disguised'}:{brand}"
        ev = {
            "title": title,
            "description": desc,
            "category": category,
            "price": round(rng.uniform(5, 300), 2),
            "currency": "USD",
            "image_hashes": [f"{rng.getrandbits(64):016x}"],
            "shop_id": f"shop-{rng.randrange(500)}",
        }
        out.append((ev, label))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--listings", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    t0 = time.perf_counter()
    matcher = compile_registry(DEFAULT_REGISTRY)
    compile_ms = (time.perf_counter() - t0) * 1e3
    phrases = [(b.name, p) for b in matcher.brands for p in (b.name, *b.aliases, *b.protected_terms)]
    folded = [(brand, normalize_text(p)) for brand, p in phrases]

    def ours(ev: dict) -> str:
        return matcher.match(**ev).brand

    def naive(ev: dict) -> str:
        text = normalize_text(f"{ev['title']} {ev['description']}")
        best, brand = 0.0, ""
        for name, p in folded:
            s = fuzz.partial_ratio(p, text)
            if s >= 85 and s > best:
                best, brand = s, name
        return brand

    data = listings(args.listings)
    times: dict[str, list[float]] = {"matcher": [], "naive": []}
    answers: dict[str, list[str]] = {}
    for ev, _ in data[:200]:  # warm-up
        ours(ev)
        naive(ev)
    for _ in range(args.rounds):
        for name, fn in (("matcher", ours), ("naive", naive)):
            got = []
            ts = times[name]
            for ev, _ in data:
                start = time.perf_counter()
                got.append(fn(ev))
                ts.append((time.perf_counter() - start) * 1e6)
            answers[name] = got

    print(
        f"python {platform.python_version()} on {platform.machine()}; registry "
        f"{len(matcher.brands)} brands, {len(phrases)} names/terms, compiled in {compile_ms:.1f} ms"
    )
    print(f"{args.listings} listings x {args.rounds} rounds\n")
    print(
        f"{'':8} {'median us':>10} {'p99 us':>8} {'plain recall':>13} {'disguised recall':>17} {'generic false hits':>19}"
    )
    med = {}
    for name in ("matcher", "naive"):
        ts = times[name]
        med[name] = median(ts)
        p99 = quantiles(ts, n=100)[98]
        plain = [
            (lab.split(":")[1], a)
            for (_, lab), a in zip(data, answers[name], strict=True)
            if lab.startswith("plain")
        ]
        hidden = [
            (lab.split(":")[1], a)
            for (_, lab), a in zip(data, answers[name], strict=True)
            if lab.startswith("disguised")
        ]
        generic = [a for (_, lab), a in zip(data, answers[name], strict=True) if not lab]
        print(
            f"{name:8} {med[name]:>10.1f} {p99:>8.1f} "
            f"{sum(b == a for b, a in plain) / len(plain):>13.1%} "
            f"{sum(b == a for b, a in hidden) / len(hidden):>17.1%} "
            f"{sum(bool(a) for a in generic) / len(generic):>19.1%}"
        )
    print(f"\nnaive / matcher median cost: {med['naive'] / med['matcher']:.2f}x")


if __name__ == "__main__":
    main()
