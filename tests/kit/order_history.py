"""The files of steady merchants, day after day, and the same files filtered: what the signs of
a filtered file (``review_ingest.core.warnings``) are measured on, by a unit test and by
``benchmarks/bench_warnings.py``.

A merchant here is steady: it sends every order it has. Its volume still moves as real shops'
does: weekdays (an online shop's Monday, a store's Saturday, a store shut on Sundays), seasons,
promotions of one to three days, a few percent of noise, cancelled orders that leave their
number unused; an online shop's orders shipped (so exported) up to three days after they were
placed, and a few weeks late; a store's exported the day they were made. Order numbers are a
shared sequence, one sequence per shop, or random; files come daily, on working days only, or
weekly. Only the valid rows matter to the signs, so a file is
the list of its valid rows' values (no e-mail or name).
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import random
from bisect import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from review_ingest.core import warnings

Rows = list[dict[str, str]]
#: Online shops' orders by weekday (Monday first), as a share of the mean; stores' too, shut
#: on Sundays for some.
WEB_WEEK = (1.15, 1.08, 1.02, 1.0, 0.95, 0.85, 0.95)
STORE_WEEK = (0.8, 0.9, 0.95, 1.0, 1.15, 1.4, 0.6)
LANGUAGES = ("en", "de", "es", "it", "nl")


@dataclass(frozen=True)
class SteadyMerchant:
    """How one simulated merchant's orders come and leave in files."""

    merchant_id: str
    daily_orders: float
    week: tuple[float, ...]
    season_amplitude: float
    season_phase: float
    numbering: str  # "shared", "per_shop" or "random"
    shops: tuple[tuple[str, float], ...]  # (shop_id, weight); none for online shops
    languages: tuple[tuple[str, float], ...]  # (code, weight); the first is the default
    language_column: bool
    products_per_order: int  # 1: one row per order; more: up to that many rows
    cadence: str  # "daily", "working_days" or "weekly"
    ship_lag: tuple[float, ...]  # share of orders exported 0, 1, 2, 3 days after
    cancel_rate: float
    noise: float

    @property
    def default_language(self) -> str:
        return self.languages[0][0]

    @property
    def references(self) -> str:
        """What its order references are like, as the measures group merchants."""
        if self.numbering == "random":
            return "random references"
        if len(self.ship_lag) == 1:
            return "numbered, each file a stretch of numbers"
        return "numbered, orders shipped over days"


def steady_merchants(count: int, rng: random.Random) -> list[SteadyMerchant]:
    """``count`` merchants of every kind, of a few hundred to a few thousand rows a file."""
    return [_merchant(f"sim-{n:03d}", rng) for n in range(count)]


def _merchant(merchant_id: str, rng: random.Random) -> SteadyMerchant:
    store = rng.random() < 0.4
    cadence = rng.choices(("daily", "working_days", "weekly"), (0.5, 0.35, 0.15))[0]
    per_day = math.exp(rng.uniform(math.log(200), math.log(2500)))
    if cadence == "weekly":
        per_day /= 7 * rng.uniform(1, 2)
    shops: tuple[tuple[str, float], ...] = ()
    if store:
        shops = tuple(
            (f"SHOP-{k:02d}", 1 / (k + 1) ** rng.uniform(0.3, 1.0))
            for k in range(rng.randint(2, 12))
        )
    others = rng.sample(LANGUAGES, rng.randint(0, 3))
    languages = (("fr", 1.0), *((code, rng.uniform(0.02, 0.15)) for code in others))
    amplitude = rng.uniform(0.5, 1.5)
    week = STORE_WEEK if store else WEB_WEEK
    if store and rng.random() < 0.5:
        week = (*week[:6], 0.0)
    return SteadyMerchant(
        merchant_id=merchant_id,
        daily_orders=per_day,
        week=tuple(0.0 if w == 0 else 1 + (w - 1) * amplitude for w in week),
        season_amplitude=rng.uniform(0.05, 0.35),
        season_phase=rng.uniform(0, 2 * math.pi),
        numbering=rng.choices(("shared", "per_shop", "random"), (0.6, 0.25 if store else 0, 0.15))[
            0
        ],
        shops=shops,
        languages=languages,
        language_column=bool(others) or rng.random() < 0.5,
        products_per_order=rng.choice((1, 1, 3)),
        cadence=cadence,
        ship_lag=(1.0,) if store else rng.choice(((0.6, 0.25, 0.1, 0.05), (0.9, 0.1))),
        cancel_rate=rng.uniform(0.0, 0.06),
        noise=rng.uniform(0.02, 0.06),
    )


@dataclass
class _Orders:
    """The orders placed so far and not yet exported, by the day they will be."""

    merchant: SteadyMerchant
    rng: random.Random
    next_number: dict[str, int] = field(default_factory=dict)
    waiting: dict[dt.date, list[dict[str, str]]] = field(default_factory=dict)
    promotion_left: int = 0
    promotion: float = 1.0


def merchant_files(
    merchant: SteadyMerchant, first_day: dt.date, days: int, rng: random.Random
) -> Iterator[tuple[dt.date, Rows]]:
    """The merchant's files, oldest first, over ``days`` days from ``first_day``: the day each
    is sent, with the valid rows of the orders exported since the previous file."""
    orders = _Orders(merchant, rng)
    pending: Rows = []
    for n in range(days):
        day = first_day + dt.timedelta(days=n)
        _place_orders(orders, day)
        pending += orders.waiting.pop(day, [])
        if _sends_on(merchant, day) and pending:
            yield day, _rows(merchant, pending, rng)
            pending = []


def _sends_on(merchant: SteadyMerchant, day: dt.date) -> bool:
    if merchant.cadence == "weekly":
        return day.weekday() == 0
    if merchant.cadence == "working_days":
        return day.weekday() < 5
    return True


def _place_orders(orders: _Orders, day: dt.date) -> None:
    m, rng = orders.merchant, orders.rng
    if orders.promotion_left == 0 and rng.random() < 0.02:
        orders.promotion_left, orders.promotion = rng.randint(1, 3), rng.uniform(1.3, 2.0)
    boost = orders.promotion if orders.promotion_left else 1.0
    orders.promotion_left = max(0, orders.promotion_left - 1)
    season = 1 + m.season_amplitude * math.sin(2 * math.pi * day.toordinal() / 365 + m.season_phase)
    mean = m.daily_orders * m.week[day.weekday()] * season * boost
    mean *= math.exp(rng.gauss(0, m.noise))
    for _ in range(_poisson(mean, rng)):
        shop = _pick(m.shops, rng) if m.shops else ""
        series = shop if m.numbering == "per_shop" else ""
        ref = _next_ref(orders, series, rng)
        if ref is None:
            continue
        values = {"order_ref": ref, "language": _language(m, rng)}
        if shop:
            values["shop_id"] = shop
        lag = bisect(_cumulative_lags(m.ship_lag), rng.random())
        if len(m.ship_lag) > 1 and rng.random() < 0.005:
            lag = rng.randint(5, 30)  # a late parcel: shipped weeks after it was ordered
        orders.waiting.setdefault(day + dt.timedelta(days=lag), []).append(values)


def _cumulative_lags(shares: tuple[float, ...]) -> list[float]:
    return list(itertools.accumulate(shares))[:-1]


def _next_ref(orders: _Orders, series: str, rng: random.Random) -> str | None:
    """The next order's reference; None for a number its order was cancelled with."""
    m = orders.merchant
    if m.numbering == "random":
        return f"R{rng.randrange(10**9):09d}"
    number = orders.next_number.get(series, 100_000)
    orders.next_number[series] = number + 1
    if rng.random() < m.cancel_rate:
        return None
    return f"{series or 'WEB'}-{number}"


def _language(m: SteadyMerchant, rng: random.Random) -> str:
    """The order's language as the file gives it: empty for the merchant's default, often."""
    code = _pick(m.languages, rng)
    if not m.language_column or (code == m.default_language and rng.random() < 0.5):
        return ""
    return code


def _rows(m: SteadyMerchant, orders: Rows, rng: random.Random) -> Rows:
    """One row per order, or one per ordered product."""
    rows: Rows = []
    for values in orders:
        for product in range(rng.randint(1, m.products_per_order)):
            rows.append({**values, "id_product": f"P{product}"})
    return rows


def _pick(weighted: tuple[tuple[str, float], ...], rng: random.Random) -> str:
    """One of the values, as likely as its weight."""
    cumulative = _cumulative(weighted)
    return weighted[bisect(cumulative, rng.random() * cumulative[-1])][0]


_cumulative_cache: dict[tuple[tuple[str, float], ...], list[float]] = {}


def _cumulative(weighted: tuple[tuple[str, float], ...]) -> list[float]:
    found = _cumulative_cache.get(weighted)
    if found is None:
        found = _cumulative_cache[weighted] = list(itertools.accumulate(w for _, w in weighted))
    return found


def _poisson(mean: float, rng: random.Random) -> int:
    """A Poisson count (normal approximation above 50)."""
    if mean > 50:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


# --- filtered files ----------------------------------------------------------------------------


def _orders_kept(rows: Rows, keep: Callable[[str, dict[str, str]], bool]) -> Rows:
    first: dict[str, dict[str, str]] = {}
    for values in rows:
        first.setdefault(values["order_ref"], values)
    kept = {ref for ref, values in first.items() if keep(ref, values)}
    return [values for values in rows if values["order_ref"] in kept]


def half_the_orders(rows: Rows, rng: random.Random) -> Rows:
    """Half the customers left out, whichever."""
    return _orders_kept(rows, lambda ref, values: rng.random() < 0.5)


def without_unhappy(rows: Rows, rng: random.Random, share: float = 0.1) -> Rows:
    """The unhappy customers left out: nothing in the file tells them, so for the file they
    are ``share`` of its orders taken anywhere."""
    return _orders_kept(rows, lambda ref, values: rng.random() >= share)


def without_shop(rows: Rows, shop_id: str) -> Rows:
    return _orders_kept(rows, lambda ref, values: values.get("shop_id") != shop_id)


def without_language(rows: Rows, language: str, default: str) -> Rows:
    return _orders_kept(rows, lambda ref, values: (values["language"] or default) != language)


# --- measuring ---------------------------------------------------------------------------------


@dataclass
class Measured:
    """Files of steady merchants flagged (false alarms), and filtered files flagged."""

    steady: int = 0
    false_alarms: int = 0
    false_by_code: dict[str, int] = field(default_factory=dict)
    filtered: dict[str, int] = field(default_factory=dict)
    detected: dict[str, int] = field(default_factory=dict)

    @property
    def false_alarm_rate(self) -> float:
        return self.false_alarms / self.steady if self.steady else 0.0

    def detection_rate(self, kind: str) -> float:
        return self.detected.get(kind, 0) / self.filtered[kind] if self.filtered.get(kind) else 0.0


def measure(count: int, days: int, seed: int, same_weekday: bool = True) -> Measured:
    """Every file of ``count`` steady merchants over ``days`` days compared with the files
    before it as the pipeline compares them (only files once a merchant has ``MIN_HISTORY``
    count); and, from each merchant's ``HISTORY_FILES + 1``-th file on, that file filtered in
    each way that applies, compared with the same history (filtered files never join it).
    ``same_weekday=False``: ``volume_drop`` without its same-weekday exception."""
    rng = random.Random(seed)
    weekday_of: Callable[[dt.date], int | None] = (
        (lambda day: day.weekday()) if same_weekday else (lambda day: None)
    )
    result = Measured()
    for merchant in steady_merchants(count, rng):
        first_day = dt.date(2026, 1, 1) + dt.timedelta(days=rng.randrange(365))
        history: list[warnings.PastFile] = []
        for day, rows in merchant_files(merchant, first_day, days, rng):
            profile = _profile(rows, merchant)
            if len(history) >= warnings.MIN_HISTORY:
                found = warnings.find_warnings(profile, history, weekday_of(day))
                result.steady += 1
                result.false_alarms += bool(found)
                for code in {w.code for w in found}:
                    result.false_by_code[code] = result.false_by_code.get(code, 0) + 1
            if len(history) >= warnings.HISTORY_FILES:
                _probe_filters(result, merchant, weekday_of(day), rows, history, rng)
            history.insert(0, warnings.PastFile(profile.valid_rows, profile, day.weekday()))
            del history[warnings.HISTORY_FILES :]
    return result


def filtered_versions(merchant: SteadyMerchant, rows: Rows, rng: random.Random) -> dict[str, Rows]:
    """The file filtered in each way that applies to it: half its orders, its unhappy
    customers' (10 %), one of its shops (any), one of its other languages (any)."""
    versions = {
        "half_the_orders": half_the_orders(rows, rng),
        "unhappy_customers": without_unhappy(rows, rng),
    }
    shops = sorted({v["shop_id"] for v in rows if v.get("shop_id")})
    if len(shops) > 1:
        versions["one_shop"] = without_shop(rows, rng.choice(shops))
    default = merchant.default_language
    languages = sorted({v["language"] or default for v in rows} - {default})
    if languages:
        versions["one_language"] = without_language(rows, rng.choice(languages), default)
    return versions


def _probe_filters(
    result: Measured,
    merchant: SteadyMerchant,
    weekday: int | None,
    rows: Rows,
    history: list[warnings.PastFile],
    rng: random.Random,
) -> None:
    for kind, filtered in filtered_versions(merchant, rows, rng).items():
        found = warnings.find_warnings(_profile(filtered, merchant), history, weekday)
        flagged = bool(found)
        for key in (kind, f"{kind}: {merchant.references}"):
            result.filtered[key] = result.filtered.get(key, 0) + 1
            result.detected[key] = result.detected.get(key, 0) + flagged


def _profile(rows: Rows, merchant: SteadyMerchant) -> warnings.FileProfile:
    return warnings.profile_of(rows, merchant.default_language)
