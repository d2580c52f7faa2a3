"""Make sample-data/orders.jsonl: 10,000 shop orders, one JSON object per line, keyed by
customer, in the envelope `kcli produce --input-format json` reads. Deterministic (seed 7).

    python sample-data/generate_orders.py > sample-data/orders.jsonl
"""

import json
import random
import sys
from datetime import datetime, timedelta, timezone

PRODUCTS = [
    ("SKU-1001", "espresso beans 1kg", 24.90), ("SKU-1002", "filter papers x100", 4.50),
    ("SKU-1003", "ceramic mug", 12.00), ("SKU-1004", "milk frother", 39.00),
    ("SKU-1005", "grinder burr set", 59.00), ("SKU-1006", "travel tumbler", 18.50),
    ("SKU-1007", "descaler", 9.90), ("SKU-1008", "pour-over kettle", 44.00),
    ("SKU-1009", "decaf beans 500g", 13.20), ("SKU-1010", "tasting notebook", 7.00),
]
COUNTRIES = ["DE", "FR", "NL", "SE", "ES", "IT", "PL", "IE"]


def main(count: int = 10_000) -> None:
    rng = random.Random(7)
    start = datetime(2026, 11, 1, tzinfo=timezone.utc)
    customers = [f"customer-{n:04d}" for n in range(1, 801)]
    out = sys.stdout
    for i in range(1, count + 1):
        customer = rng.choice(customers)
        items = []
        for sku, name, price in rng.sample(PRODUCTS, rng.randint(1, 3)):
            qty = rng.randint(1, 4)
            items.append({"sku": sku, "name": name, "qty": qty, "unit_price": price})
        total = round(sum(it["qty"] * it["unit_price"] for it in items), 2)
        created = start + timedelta(seconds=i * 237 + rng.randint(0, 200))
        order = {
            "order_id": f"ord-{i:06d}",
            "customer": customer,
            "country": rng.choice(COUNTRIES),
            "items": items,
            "total": total,
            "currency": "EUR",
            "created_at": created.isoformat().replace("+00:00", "Z"),
        }
        record = {"key": customer, "value": order, "headers": [{"key": "source", "value": "web-shop"}]}
        out.write(json.dumps(record, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
