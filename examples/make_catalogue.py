"""Write the demo's sample catalogue (a small outdoor & home shop) as a BEIR-layout folder.

The products are composed from hand-written parts below with a fixed seed, so
the catalogue is the same on every machine.  Queries are phrased the way
shoppers type them (often with words the titles don't use, which is where
the vector leg helps) and judged from the attributes each product was built
from: 2 = exactly what was asked, 1 = the right kind of thing. Each query's
``metadata.kind`` says whether it is a *keyword* query (words of the titles) or a
*descriptive* one (a shopper's own words, none of any title).

    python examples/make_catalogue.py examples/catalogue
"""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

BRANDS = ["Northpeak", "Lumen & Co", "Harbor Home", "Trailcraft", "Kestrel", "Oakline", "Brightwave", "Solace"]

# kind -> (category, noun variants, description sentences, attribute choices)
KINDS: dict[str, tuple[str, list[str], list[str], dict[str, list[str]]]] = {
    "tent": (
        "camping",
        ["Tent", "Backpacking Tent", "Dome Tent"],
        [
            "Sets up in under five minutes with colour-coded poles.",
            "A full-coverage rainfly keeps you dry through a night of steady rain.",
            "Two doors and two vestibules so nobody climbs over anyone.",
        ],
        {"size": ["1-Person", "2-Person", "4-Person", "6-Person"], "season": ["3-Season", "4-Season"]},
    ),
    "sleeping bag": (
        "camping",
        ["Sleeping Bag", "Mummy Sleeping Bag", "Down Sleeping Bag"],
        [
            "Rated for chilly nights in the mountains.",
            "Packs down to the size of a water bottle.",
            "A draft collar and hood keep the warmth in.",
        ],
        {"rating": ["20°F", "30°F", "0°F", "40°F"], "fill": ["Down", "Synthetic"]},
    ),
    "headlamp": (
        "camping",
        ["Headlamp", "Rechargeable Headlamp"],
        [
            "Bright enough to walk a forest trail at night.",
            "Charges over USB-C in two hours.",
            "A red-light mode saves your night vision.",
        ],
        {"lumens": ["300 Lumen", "600 Lumen", "1000 Lumen"]},
    ),
    "water bottle": (
        "kitchen",
        ["Water Bottle", "Insulated Water Bottle", "Stainless Steel Bottle"],
        [
            "Keeps drinks cold for 24 hours and hot for 12.",
            "Leak-proof lid, fits a car cup holder.",
            "Dishwasher safe and free of BPA.",
        ],
        {"capacity": ["16 oz", "24 oz", "32 oz", "40 oz"]},
    ),
    "coffee maker": (
        "kitchen",
        ["Coffee Maker", "Pour-Over Coffee Maker", "Drip Coffee Machine"],
        [
            "Brews a full carafe before you have found your shoes.",
            "A programmable timer means coffee is ready when you wake up.",
            "The thermal carafe keeps coffee hot without a burner.",
        ],
        {"cups": ["4-Cup", "8-Cup", "12-Cup"]},
    ),
    "chef knife": (
        "kitchen",
        ["Chef Knife", "Chef's Knife", "Santoku Knife"],
        [
            "Forged from high-carbon stainless steel and hand sharpened.",
            "A balanced handle makes long prep sessions comfortable.",
            "Slices tomatoes paper thin.",
        ],
        {"length": ['6"', '8"', '10"']},
    ),
    "desk lamp": (
        "home office",
        ["Desk Lamp", "LED Desk Lamp", "Architect Lamp"],
        [
            "Five colour temperatures from warm to daylight.",
            "A flexible arm puts light where you read.",
            "Flicker-free light that is easy on the eyes during late work.",
        ],
        {"finish": ["Black", "White", "Brass"]},
    ),
    "office chair": (
        "home office",
        ["Office Chair", "Ergonomic Office Chair", "Mesh Task Chair"],
        [
            "Adjustable lumbar support for long days at the desk.",
            "Breathable mesh back keeps you cool.",
            "Armrests move in four directions.",
        ],
        {"color": ["Black", "Grey", "Blue"]},
    ),
    "noise cancelling headphones": (
        "electronics",
        ["Noise Cancelling Headphones", "Wireless Over-Ear Headphones"],
        [
            "Active noise cancellation quiets planes, trains and open offices.",
            "Up to 30 hours of battery on one charge.",
            "Soft ear cushions for all-day listening.",
        ],
        {"color": ["Black", "Silver", "Navy"]},
    ),
    "power bank": (
        "electronics",
        ["Power Bank", "Portable Charger", "USB-C Power Bank"],
        [
            "Charges a phone three times over.",
            "Fast charging over USB-C Power Delivery.",
            "Small enough for a jacket pocket.",
        ],
        {"capacity": ["10000mAh", "20000mAh", "26800mAh"]},
    ),
    "rain jacket": (
        "apparel",
        ["Rain Jacket", "Waterproof Shell", "Packable Rain Coat"],
        [
            "Seam-sealed and fully waterproof yet breathable.",
            "Packs into its own pocket.",
            "An adjustable hood stays put in the wind.",
        ],
        {"gender": ["Men's", "Women's"], "color": ["Red", "Green", "Black", "Yellow"]},
    ),
    "hiking boots": (
        "apparel",
        ["Hiking Boots", "Waterproof Hiking Boots", "Trail Boots"],
        [
            "Grippy lugged soles for wet rock and mud.",
            "A waterproof membrane keeps feet dry.",
            "Broken in straight out of the box.",
        ],
        {"gender": ["Men's", "Women's"], "color": ["Brown", "Grey"]},
    ),
    "yoga mat": (
        "fitness",
        ["Yoga Mat", "Non-Slip Yoga Mat", "Exercise Mat"],
        [
            "Non-slip on both sides, even in hot yoga.",
            "Thick enough to cushion knees on hard floors.",
            "Comes with a carrying strap.",
        ],
        {"thickness": ["4mm", "6mm", "8mm"]},
    ),
    "dumbbells": (
        "fitness",
        ["Adjustable Dumbbells", "Dumbbell Set", "Hex Dumbbells"],
        [
            "Change weight with a turn of the dial.",
            "Rubber-coated heads protect your floor.",
            "Replaces a whole rack of weights in a small apartment.",
        ],
        {"weight": ["25 lb", "50 lb", "5-52.5 lb"]},
    ),
}

# Queries in the catalogue's own words (keyword) and in a shopper's own words (descriptive: no
# word of any product title, checked by build()); the bench reports the two kinds apart.
QUERIES: list[tuple[str, str, dict[str, str]]] = [
    ("q1", "tent for two people", {"kind": "tent", "size": "2-Person"}),
    ("q2", "something warm to sleep in when camping in winter", {"kind": "sleeping bag", "rating": "0°F"}),
    ("q3", "flashlight you wear on your head", {"kind": "headlamp"}),
    ("q4", "bottle that keeps water cold all day", {"kind": "water bottle"}),
    ("q5", "machine to brew coffee in the morning", {"kind": "coffee maker"}),
    ("q6", "sharp kitchen knife for chopping vegetables", {"kind": "chef knife"}),
    ("q7", "light for reading at my desk", {"kind": "desk lamp"}),
    ("q8", "comfortable chair for working from home with back support", {"kind": "office chair"}),
    ("q9", "headphones that block airplane noise", {"kind": "noise cancelling headphones"}),
    ("q10", "portable battery to charge my phone", {"kind": "power bank"}),
    ("q11", "waterproof jacket for women", {"kind": "rain jacket", "gender": "Women's"}),
    ("q12", "boots for muddy trails", {"kind": "hiking boots"}),
    ("q13", "mat for yoga that doesn't slip", {"kind": "yoga mat"}),
    ("q14", "weights for home workouts in a small flat", {"kind": "dumbbells"}),
    ("q15", "4-season tent", {"kind": "tent", "season": "4-Season"}),
    # descriptive, judged by product type only (issue 23)
    ("q16", "shelter to sleep outdoors on a camping trip", {"kind": "tent"}),
    ("q17", "something to keep me cozy at night in the mountains", {"kind": "sleeping bag"}),
    ("q18", "light strapped to your forehead for night runs", {"kind": "headlamp"}),
    ("q19", "flask for hot tea on a long walk", {"kind": "water bottle"}),
    ("q20", "appliance that makes my first hot brew of the day", {"kind": "coffee maker"}),
    ("q21", "blade for slicing tomatoes thin", {"kind": "chef knife"}),
    ("q22", "something to brighten my workspace at night", {"kind": "desk lamp"}),
    ("q23", "seat that is kind to my spine during long workdays", {"kind": "office chair"}),
    ("q24", "something to silence the engine hum on flights", {"kind": "noise cancelling headphones"}),
    ("q25", "keep my smartphone alive on a trip", {"kind": "power bank"}),
    ("q26", "something to stay dry in a storm", {"kind": "rain jacket"}),
    ("q27", "footwear for climbing mountains", {"kind": "hiking boots"}),
    ("q28", "padding for stretching and pilates on the floor", {"kind": "yoga mat"}),
    ("q29", "gear to build muscle in my apartment", {"kind": "dumbbells"}),
    ("q30", "lantern for your head when caving", {"kind": "headlamp"}),
]
DESCRIPTIVE = {"q2", "q3", *(f"q{n}" for n in range(16, 31))}


def build(seed: int = 7, per_kind: int = 22) -> tuple[list[dict], list[dict], list[tuple[str, str, int]]]:
    rng = random.Random(seed)
    corpus: list[dict] = []
    attrs_of: dict[str, dict[str, str]] = {}
    n = 0
    for kind, (category, nouns, sentences, choices) in KINDS.items():
        for _ in range(per_kind):
            n += 1
            doc_id = f"P{n:04d}"
            attrs = {key: rng.choice(values) for key, values in choices.items()}
            brand = rng.choice(BRANDS)
            noun = rng.choice(nouns)
            title = " ".join([brand, *attrs.values(), noun])
            text = " ".join(rng.sample(sentences, k=len(sentences)))
            price = round(rng.uniform(12, 320), 2)
            corpus.append(
                {
                    "_id": doc_id,
                    "title": title,
                    "text": text,
                    "brand": brand,
                    "category": category,
                    "price": price,
                    "in_stock": rng.random() > 0.15,
                    "rating": round(rng.uniform(3.0, 5.0), 1),
                }
            )
            attrs_of[doc_id] = {"kind": kind, **attrs}
    _check_descriptive(corpus)
    queries = [
        {"_id": qid, "text": text, "metadata": {"kind": "descriptive" if qid in DESCRIPTIVE else "keyword"}}
        for qid, text, _ in QUERIES
    ]
    qrels: list[tuple[str, str, int]] = []
    for qid, _, want in QUERIES:
        for doc_id, attrs in attrs_of.items():
            if attrs["kind"] != want["kind"]:
                continue
            exact = all(attrs.get(k) == v for k, v in want.items())
            qrels.append((qid, doc_id, 2 if exact else 1))
    return corpus, queries, qrels


def _check_descriptive(corpus: list[dict]) -> None:
    """A descriptive query shares no word (nor its plural) with any product title."""
    title_words = {w.lower().rstrip("s") for doc in corpus for w in re.findall(r"[A-Za-z]+", doc["title"])}
    for qid, text, _ in QUERIES:
        shared = {w for w in re.findall(r"[A-Za-z]+", text.lower()) if w.rstrip("s") in title_words}
        if qid in DESCRIPTIVE and shared:
            raise SystemExit(f"descriptive query {qid} {text!r} uses title words {sorted(shared)}")


def write(folder: Path) -> None:
    corpus, queries, qrels = build()
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with (folder / "corpus.jsonl").open("w", encoding="utf-8") as f:
        for doc in corpus:
            f.write(json.dumps(doc, ensure_ascii=False) + "\n")
    with (folder / "queries.jsonl").open("w", encoding="utf-8") as f:
        for q in queries:
            f.write(json.dumps(q, ensure_ascii=False) + "\n")
    with (folder / "qrels" / "test.tsv").open("w", encoding="utf-8") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for qid, doc_id, score in qrels:
            f.write(f"{qid}\t{doc_id}\t{score}\n")


if __name__ == "__main__":
    write(Path(sys.argv[1] if len(sys.argv) > 1 else "examples/catalogue"))
