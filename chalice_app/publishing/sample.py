"""Deterministic sample data: a grocer's next-day demand forecast per product.

    python -m chalice_app.publishing.sample --days 7 --count 200 [--stage S | --bucket B | --out DIR]

Uploads go through the publish code path (validation, verify, pointer), so the sample bucket is
exactly what a real model job would produce. The same date and count always give the same batch.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import sys
from typing import Any

from chalice_app.contract import DEFAULT_PREFIX, batch_key, normalize_prefix, pointer_key
from chalice_app.publishing.publish import PublishError, encode_document, make_client, publish_document, resolve_target

MODEL = {"name": "demand-forecast", "version": "3.2.0"}
FIELDS = [
    {"name": "id", "label": "SKU", "type": "string"},
    {"name": "label", "label": "Product", "type": "string"},
    {"name": "category", "label": "Category", "type": "string"},
    {"name": "value", "label": "Forecast (units)", "type": "number"},
    {"name": "lower", "label": "Low (90%)", "type": "number"},
    {"name": "upper", "label": "High (90%)", "type": "number"},
]
CATALOGUE = {
    "Dairy": ["Oat milk", "Whole milk", "Greek yoghurt", "Butter", "Cheddar", "Skyr", "Cream"],
    "Bakery": ["Sourdough loaf", "Baguette", "Croissant", "Rye bread", "Bagels", "Brioche"],
    "Produce": ["Bananas", "Apples", "Avocados", "Tomatoes", "Spinach", "Carrots", "Lemons", "Onions"],
    "Pantry": ["Basmati rice", "Penne", "Olive oil", "Chickpeas", "Oats", "Honey", "Coffee beans"],
    "Drinks": ["Orange juice", "Sparkling water", "Cola", "Green tea", "Kombucha"],
    "Frozen": ["Peas", "Pizza margherita", "Vanilla ice cream", "Fish fingers"],
}
# Past the catalogue, each product comes again in a variant its shelf has ("Bananas (organic)", "Cola (6 x 330 ml)"):
# a variant that fits every product of the category, so no label reads like a bug ("Avocados 1l").
VARIANTS = {
    "Dairy": ["organic", "large", "lactose-free", "value"],
    "Bakery": ["wholemeal", "pack of 4", "large", "seeded"],
    "Produce": ["organic", "loose", "1 kg bag", "value"],
    "Pantry": ["organic", "value", "family size", "fair trade"],
    "Drinks": ["6 x 330 ml", "1.5 l", "sugar-free", "organic"],
    "Frozen": ["family size", "value", "organic", "large"],
}


def products(count: int) -> list[tuple[str, str, str, float]]:
    """(id, label, category, base demand) for the first `count` products, the same every day."""
    rng = random.Random(20261123)  # noqa: S311 - sample data, not security
    names = [(cat, name) for cat, items in CATALOGUE.items() for name in items]
    out = []
    for i in range(count):
        category, name = names[i % len(names)]
        variants = VARIANTS[category]
        round_ = i // len(names)  # 0: the catalogue itself, then one variant per round
        label = name if round_ == 0 else f"{name} ({variants[(round_ - 1) % len(variants)]})"
        if round_ > len(variants):  # past every variant: a pack size keeps labels distinct
            label = f"{label}, pack of {round_ // len(variants) + 1}"
        out.append((f"sku-{i + 1:05d}", label, category, round(rng.lognormvariate(4.5, 0.8), 1)))
    return out


def make_batch(date: str, count: int) -> dict[str, Any]:
    """The batch document of one date: value with a 90% interval, seasonal by weekday."""
    day = dt.date.fromisoformat(date)
    rng = random.Random(f"{date}:{count}")  # noqa: S311 - sample data, not security
    weekend = 1.25 if day.weekday() >= 4 else 1.0
    rows = []
    for pid, label, category, base in products(count):
        value = round(base * weekend * rng.uniform(0.85, 1.15), 1)
        spread = value * rng.uniform(0.06, 0.2)
        rows.append({"id": pid, "label": label, "category": category, "value": value,
                     "lower": round(max(0.0, value - spread), 1), "upper": round(value + spread, 1)})
    return {"date": date, "generated_at": f"{date}T04:00:00Z", "model": dict(MODEL), "fields": FIELDS,
            "predictions": rows}


def dates_ending(end: str, days: int) -> list[str]:
    last = dt.date.fromisoformat(end)
    return [(last - dt.timedelta(days=n)).isoformat() for n in range(days - 1, -1, -1)]


def write_folder(root: str, prefix: str, docs: list[dict]) -> None:
    """Lay the batches out in a folder exactly as in the bucket (for build_site.py --source)."""
    for doc in docs:
        path = os.path.join(root, *batch_key(prefix, doc["date"]).split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(encode_document(doc)[1])
    newest = max(doc["date"] for doc in docs)
    with open(os.path.join(root, *pointer_key(prefix).split("/")), "w", encoding="utf-8") as fh:
        json.dump({"date": newest}, fh)


def main(argv: list[str] | None = None, client: Any = None) -> int:
    p = argparse.ArgumentParser(prog="python -m chalice_app.publishing.sample",
                                description="Write N days of deterministic sample predictions "
                                            "(a grocer's next-day demand forecast) through the publish path.")
    p.add_argument("--days", type=int, default=7, help="how many days, ending at --end-date (default 7)")
    p.add_argument("--count", type=int, default=200, help="predictions per day (default 200)")
    p.add_argument("--end-date", default=dt.date.today().isoformat(), help="the newest date (default today)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--stage", help="bucket and prefix from this stage (default local)")
    where.add_argument("--bucket", help="the predictions bucket")
    where.add_argument("--out", help="write to this folder, laid out like the bucket, instead of S3")
    p.add_argument("--prefix", help=f"key prefix (default {DEFAULT_PREFIX})")
    p.add_argument("--force", action="store_true", help="replace dates that already exist")
    args = p.parse_args(argv)
    if args.days < 1 or args.count < 1:
        p.error("--days and --count must be at least 1")
    try:
        dt.date.fromisoformat(args.end_date)
    except ValueError:
        p.error(f"--end-date must be YYYY-MM-DD, got {args.end_date!r}")
    docs = [make_batch(date, args.count) for date in dates_ending(args.end_date, args.days)]
    if args.out:
        write_folder(args.out, normalize_prefix(args.prefix or DEFAULT_PREFIX), docs)
        print(f"wrote {len(docs)} batches of {args.count} predictions to {args.out}")
        return 0
    try:
        bucket, prefix = resolve_target(args.stage, args.bucket, args.prefix)
        client = client or make_client()
        for n, doc in enumerate(docs, 1):
            publish_document(client, bucket, prefix, doc, force=args.force,
                             reason="sample data (predictions-sample --force)" if args.force else None)
            print(f"[{n}/{len(docs)}] published {doc['date']}", file=sys.stderr, flush=True)
    except PublishError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"published {len(docs)} batches of {args.count} predictions to s3://{bucket}/{prefix}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
