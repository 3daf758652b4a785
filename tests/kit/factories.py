"""Data the tests and benchmarks make: merchants files, dated sample files dropped as merchants
leave them, and generated ``website_products`` order files of any size."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import random
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from review_ingest.sources.samples import dated_copy

PARIS = ZoneInfo("Europe/Paris")
TEMPLATES = ("website", "store", "website_products", "store_products")
#: merchant id -> template: one merchant per template, as the sample files are.
SAMPLE_MERCHANTS = {
    "shop-web": "website",
    "shop-store": "store",
    "shop-products": "website_products",
    "shop-store-products": "store_products",
}
MB = 1024 * 1024
MAX_FILE_BYTES = 5 * MB  # review_ingest.settings.MAX_FILE_BYTES
BIG_FILE_BYTES = MAX_FILE_BYTES - 16 * 1024  # "just under 5 MB"
#: The template of the generated order files.
TEMPLATE = "website_products"


# -- merchants and dated samples ---------------------------------------------------------------


def paris_today() -> dt.date:
    return dt.datetime.now(PARIS).date()


def yesterday() -> dt.date:
    return paris_today() - dt.timedelta(days=1)


def write_merchants(path: Path, merchants: Mapping[str, Any], extra: str = "") -> Path:
    """A merchants file: each merchant id with its template, or with a mapping of its settings
    (nested mappings for blocks such as ``sftp``); ``extra`` is appended as it is."""
    lines = ["merchants:"]
    for merchant_id, settings in merchants.items():
        fields = {"template": settings} if isinstance(settings, str) else settings
        lines += [f"  {merchant_id}:", *_yaml_lines(fields, "    ")]
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    return path


def _yaml_lines(fields: Mapping[str, Any], indent: str) -> list[str]:
    lines = []
    for key, value in fields.items():
        if isinstance(value, Mapping):
            lines += [f"{indent}{key}:", *_yaml_lines(value, indent + "  ")]
        else:
            lines.append(f"{indent}{key}: {value}")
    return lines


def merchant_ids(count: int, prefix: str = "dist") -> dict[str, str]:
    """``count`` merchants ``<prefix>-001``..., the four templates in turn."""
    return {f"{prefix}-{i + 1:03d}": TEMPLATES[i % len(TEMPLATES)] for i in range(count)}


def sample_for_yesterday(template: str) -> str:
    """The template's sample file, its orders dated yesterday."""
    return dated_copy(template, yesterday())


def drop(folder: Path, name: str, content: str | bytes, age_seconds: float = 600) -> Path:
    """A file as a merchant leaves it, already older than the minimum age unless told."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    stamp = time.time() - age_seconds
    os.utime(path, (stamp, stamp))
    return path


@dataclass(frozen=True)
class Dropped:
    """A file :func:`drop_files` left, and the review requests it must make."""

    merchant_id: str
    name: str
    content: bytes
    requests: int


def expected_requests(text: str) -> int:
    """Review requests of a sample-based file: one per order, plus one per ordered product."""
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))
    header = [name.rstrip("*") for name in rows[0]]
    refs = [row[header.index("order_ref")] for row in rows[1:] if row]
    products = len(refs) if "id_product" in header else 0
    return len(set(refs)) + products


def _fresh_copies(sample: str, number: int, copies: int) -> str:
    """The sample with order references of file ``number``'s own (``-F0001``...), its rows
    ``copies`` times, each copy with references of its own (``-F0001-2``...)."""
    header, *rows = sample.splitlines(keepends=True)
    return header + "".join(
        re.sub(r"^([A-Z]+-\d+)", rf"\1-F{number:04d}{f'-{copy}' if copy else ''}", row)
        for copy in range(copies)
        for row in rows
    )


def drop_files(
    data_dir: Path, merchants: dict[str, str], count: int, copies: int = 1
) -> list[Dropped]:
    """``count`` dated sample files in ``data_dir/uploads``, round-robin over the merchants,
    none rejected as existing_proofs (see :func:`_fresh_copies`); each appears at once, whole
    (written aside, then renamed)."""
    samples = {template: sample_for_yesterday(template) for template in TEMPLATES}
    ids = list(merchants)
    dropped = []
    for number in range(count):
        merchant_id = ids[number % len(ids)]
        text = _fresh_copies(samples[merchants[merchant_id]], number, copies)
        folder = data_dir / "uploads" / merchant_id
        folder.mkdir(parents=True, exist_ok=True)
        name = f"orders-{number:04d}.csv"
        partial = folder / f".{name}.tmp"
        partial.write_text(text, encoding="utf-8")
        partial.rename(folder / name)
        dropped.append(Dropped(merchant_id, name, text.encode("utf-8"), expected_requests(text)))
    return dropped


# -- generated order files ---------------------------------------------------------------------

HEADER = (
    "order_ref*;email*;lastname*;firstname*;order_date*;delay;language;id_product*;"
    "name_product*;url_product;url_image_product;gtin_ean;sku;brand_name;delay_product"
)
COLUMNS = [name.rstrip("*") for name in HEADER.split(";")]
FIRST = ("Claire", "Hugo", "Inès", "Paul", "Léa", "Lucas", "Emma", "Jules", "Chloé", "Noah")
LAST = ("Moreau", "Nguyen", "García", "Lefèvre", "Martin", "Bernard", "Dubois", "Petit", "Roux")
DOMAINS = ("example.fr", "example.com", "mail.example.es", "example.de")
PRODUCTS = ("Lampe laiton", "Ampoule LED E27", "Table chêne", "Coussin lin", "Vase grès", "Tapis")
BRANDS = ("Lumio", "Bois & Co", "Maison Lin", "Terra")
LANGUAGES = ("fr", "fr", "en", "es", "de")


@dataclass(frozen=True)
class Order:
    """The order-level values shared by every row of one order."""

    ref: str
    email: str
    lastname: str
    firstname: str
    order_date: str
    delay: str
    language: str


def _date_text(day: dt.date, rng: random.Random) -> str:
    """A day in one of the accepted formats, sometimes with a time."""
    form = rng.randrange(4)
    if form == 0:
        return f"{day:%d-%m-%Y}"
    if form == 1:
        return f"{day:%d/%m/%Y}"
    if form == 2:
        return f"{day:%Y-%m-%d} {rng.randrange(24):02d}:{rng.randrange(60):02d}"
    return f"{day:%Y-%m-%d}"


def _order(ref: str, today: dt.date, rng: random.Random) -> Order:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    ascii_first = first.encode("ascii", "ignore").decode().lower()
    ascii_last = last.encode("ascii", "ignore").decode().lower()
    day = today - dt.timedelta(days=rng.randint(1, 30))
    return Order(
        ref=ref,
        email=f"{ascii_first}.{ascii_last}{rng.randrange(1000)}@{rng.choice(DOMAINS)}",
        lastname=last,
        firstname=first,
        order_date=_date_text(day, rng),
        delay=rng.choice(("", "0", "2", "7")),
        language=rng.choice(LANGUAGES),
    )


def _product_fields(product: int, rng: random.Random) -> list[str]:
    pid = f"P{product:05d}"
    return [
        pid,
        f"{rng.choice(PRODUCTS)} {product % 90 + 10}",
        f"https://shop.example.com/p/{pid}" if rng.random() < 0.35 else "",
        f"https://cdn.example.com/{pid}.jpg" if rng.random() < 0.1 else "",
        f"{3000000000000 + product * 7919:013d}" if rng.random() < 0.6 else "",
        f"SKU{product:05d}",
        rng.choice(BRANDS),
        rng.choice(("", "7", "14")),
    ]


def valid_rows(prefix: str, today: dt.date, rng: random.Random) -> Iterator[str]:
    """Endless valid rows: 1 to 5 products per order (3 on average), each product once."""
    number = 0
    while True:
        number += 1
        order = _order(f"{prefix}{number:07d}", today, rng)
        head = [order.ref, order.email, order.lastname, order.firstname, order.order_date]
        for product in rng.sample(range(1, 5000), rng.randint(1, 5)):
            tail = _product_fields(product, rng)
            yield ";".join([*head, order.delay, order.language, *tail])


def bad_rows(rng: random.Random) -> Iterator[str]:
    """Endless rows that each break 7 rules: e-mail, date, delay, language, URL, GTIN, delay."""
    number = 0
    while True:
        number += 1
        product = rng.randrange(1, 5000)
        yield ";".join(
            [
                f"BAD{number:07d}",
                f"not-an-email-{number}",
                rng.choice(LAST),
                rng.choice(FIRST),
                f"{rng.randint(32, 39)}-13-2026",
                "99",
                "xx",
                f"P{product:05d}",
                rng.choice(PRODUCTS),
                "ftp://shop/p",
                "",
                "12ab",
                f"SKU{product:05d}",
                rng.choice(BRANDS),
                "-3",
            ]
        )


def write_rows(path: Path, rows: Iterator[str], max_bytes: int | None, count: int | None) -> int:
    """Header then rows until the next one would pass ``max_bytes`` (or ``count`` rows)."""
    parts = [HEADER + "\n"]
    size = len(parts[0].encode())
    written = 0
    for row in rows:
        line = row + "\n"
        length = len(line.encode())
        if (max_bytes is not None and size + length > max_bytes) or written == count:
            break
        parts.append(line)
        size += length
        written += 1
    path.write_text("".join(parts), encoding="utf-8")
    return written


def write_big_files(folder: Path) -> dict[str, Any]:
    """A valid and an all-bad ``website_products`` file just under 5 MB: their paths, sizes
    and rows."""
    rng = random.Random(20261127)
    valid, bad = folder / "orders_valid.csv", folder / "orders_all_bad.csv"
    valid_count = write_rows(valid, valid_rows("WP", paris_today(), rng), BIG_FILE_BYTES, None)
    bad_count = write_rows(bad, bad_rows(rng), BIG_FILE_BYTES, None)
    return {
        "valid": {"path": str(valid), "bytes": valid.stat().st_size, "rows": valid_count},
        "all_bad": {"path": str(bad), "bytes": bad.stat().st_size, "rows": bad_count},
    }
