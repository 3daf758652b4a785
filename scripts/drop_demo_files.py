"""Drop a dated copy of each sample file into its demo merchant's upload folder."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

from review_ingest import settings
from review_ingest.core.merchants import load_merchants
from review_ingest.sources.samples import dated_copy

DEMO = {
    "demo-website": "website",
    "demo-store": "store",
    "demo-products": "website_products",
    "demo-store-products": "store_products",
}


def main() -> None:
    merchants = load_merchants(settings.merchants_file())
    yesterday = dt.datetime.now(ZoneInfo("Europe/Paris")).date() - dt.timedelta(days=1)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    for merchant_id, template in DEMO.items():
        if merchants[merchant_id].template != template:
            raise SystemExit(f"merchant {merchant_id} must use the {template} template")
        folder = settings.data_dir() / "uploads" / merchant_id
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"orders-{stamp}.csv"
        # Fresh order references each run: the demo always loads, never existing_proofs.
        text = re.sub(r"(?m)^([A-Z]+-\d+)", rf"\1-{stamp}", dated_copy(template, yesterday))
        target.write_text(text, encoding="utf-8")
        print(f"demo: dropped {target}")


if __name__ == "__main__":
    main()
