"""Signs of a filtered file: a file compared with its merchant's last loaded files.

NF ISO 20488 has every customer asked for a review, so a merchant may not leave some customers
out of a file (a shop, a language, the unhappy ones). Such a file cannot be told for sure: it is
noticed, never rejected. Each sign is a warning, ``{"code", "message"}``, in the file's report
and in ``imports.warnings``:

- ``volume_drop``: valid rows under half the median of the last ``HISTORY_FILES`` loaded files
  (when the last file of the same weekday was under it too, only under half of that file: a
  quiet weekday is the merchant's rhythm);
- ``order_ref_gaps``: the file's numbered order references leave far more numbers out of their
  runs than usual (customers taken out of a numbered sequence, whatever the reason they share);
- ``missing_shop``, ``missing_language``: a ``shop_id`` or a language that had orders in each of
  the last files, and enough to be expected here, has none in this file.

Each needs ``MIN_HISTORY`` earlier files. The comparison needs a compact profile of each file
(``FileProfile``, kept as JSON in ``imports.profile``); nothing here reads a customer's e-mail
or name.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: The loaded files a file is compared with, newest first.
HISTORY_FILES = 8
#: No sign before the merchant has this many loaded files.
MIN_HISTORY = 4
#: ``volume_drop``: valid rows under this share of the usual (median) valid rows.
VOLUME_DROP_SHARE = 0.5
#: Order references are numbered runs when their numbers follow each other within this step
#: (up to ``MAX_STEP - 1`` numbers missing): a bigger jump starts a new run, so that a late
#: order or a second series does not count its distance as missing orders.
MAX_STEP = 21
#: ``order_ref_gaps`` judges files whose runs cover at least this many numbers.
MIN_SPAN = 100
#: ... of merchants whose references usually fill at least this share of their runs: numbers
#: given in sequence, though a file may hold only some of each day's (shipped orders, one of
#: several channels); random references fill next to nothing.
NUMBERED_FILL = 0.2
#: The fill may fall by this share of its usual value before it is a sign, at least; by more
#: when the file is small (binomial noise) or the merchant's files vary more (their spread).
MIN_FILL_DROP = 0.05
NOISE_FACTOR = 5.0
#: ``missing_shop``, ``missing_language``: only values with at least this many orders expected.
MIN_EXPECTED = 10
#: Values of each column kept in a stored profile, the biggest first.
MAX_STORED_VALUES = 100
PROFILE_VERSION = 1

_DIGITS = "0123456789"
#: The last digits of a reference read as its number: at most this many.
MAX_DIGITS = 18


@dataclass(frozen=True)
class FileWarning:
    """One sign that a file may have been filtered: a code and words for the merchant."""

    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class FileProfile:
    """What later files are compared with: counts of a file's valid rows and orders, orders per
    shop and per language, and how well its numbered order references fill their runs."""

    valid_rows: int
    orders: int
    shops: Mapping[str, int] = field(default_factory=dict)
    languages: Mapping[str, int] = field(default_factory=dict)
    #: Numbered references inside runs, and the numbers those runs cover.
    ref_present: int = 0
    ref_span: int = 0

    @property
    def ref_fill(self) -> float:
        return self.ref_present / self.ref_span if self.ref_span else 0.0


@dataclass(frozen=True)
class PastFile:
    """An earlier loaded file of the merchant: its valid rows, its profile when it has one
    (files loaded before profiles were kept have none), the weekday it was processed on."""

    valid_rows: int
    profile: FileProfile | None = None
    weekday: int | None = None


def profile_of(rows: Iterable[Mapping[str, str]], default_language: str) -> FileProfile:
    """The profile of a file's valid rows (their trimmed values by column); an order counts
    once, with the shop and language of its first row."""
    valid_rows = 0
    first: dict[str, Mapping[str, str]] = {}
    for values in rows:
        valid_rows += 1
        first.setdefault(values.get("order_ref", ""), values)
    orders = first.values()
    shops = Counter(shop for values in orders if (shop := values.get("shop_id")))
    languages = Counter((values.get("language") or default_language).lower() for values in orders)
    present, span = numbered_runs(first)
    return FileProfile(valid_rows, len(first), dict(shops), dict(languages), present, span)


def numbered_runs(refs: Iterable[str]) -> tuple[int, int]:
    """How many references fall in runs of close numbers, and how many numbers those runs
    cover: ``WEB-101``, ``WEB-102``, ``WEB-104`` are 3 in a run of 4.

    References are grouped by what precedes their last digits (``WEB-``, ``2026-11-``); a
    number more than ``MAX_STEP`` from the previous one starts a new run, and a run of one
    counts for nothing (random or far apart references).
    """
    series: dict[str, set[int]] = {}
    for ref in refs:
        prefix = ref.rstrip(_DIGITS)
        if 0 < len(ref) - len(prefix) <= MAX_DIGITS:
            series.setdefault(prefix, set()).add(int(ref[len(prefix) :]))
    present = span = 0
    for found in series.values():
        numbers = sorted(found)
        start = previous = numbers[0]
        count = 0
        for number in numbers:
            if number - previous > MAX_STEP:
                if count > 1:
                    present += count
                    span += previous - start + 1
                start, count = number, 0
            count += 1
            previous = number
        if count > 1:
            present += count
            span += previous - start + 1
    return present, span


def find_warnings(
    profile: FileProfile, history: Sequence[PastFile], weekday: int | None = None
) -> list[FileWarning]:
    """The signs of a filtered file in ``profile``, processed on ``weekday`` (Monday 0),
    against the merchant's last loaded files (newest first; the first ``HISTORY_FILES``)."""
    recent = list(history[:HISTORY_FILES])
    profiles = [p.profile for p in recent if p.profile is not None]
    found = [
        *_volume_drop(profile, recent, weekday),
        *_ref_gaps(profile, profiles),
        *_missing_values(profile, profiles, "shop_id", "missing_shop"),
        *_missing_values(profile, profiles, "language", "missing_language"),
    ]
    return found


def _volume_drop(
    profile: FileProfile, recent: Sequence[PastFile], weekday: int | None
) -> list[FileWarning]:
    """Under half the median of the last files; unless the last file of the same weekday was
    under it too, and this one is not under half of that: a store's quiet Sunday is its
    rhythm, not customers left out."""
    if len(recent) < MIN_HISTORY:
        return []
    usual = statistics.median(p.valid_rows for p in recent)
    if profile.valid_rows >= VOLUME_DROP_SHARE * usual:
        return []
    same_day = next((p for p in recent if weekday is not None and p.weekday == weekday), None)
    if (
        same_day is not None
        and same_day.valid_rows < VOLUME_DROP_SHARE * usual
        and profile.valid_rows >= VOLUME_DROP_SHARE * same_day.valid_rows
    ):
        return []
    return [
        FileWarning(
            "volume_drop",
            f"this file has {profile.valid_rows:,} valid rows, less than half the usual "
            f"{usual:,.0f} (the median of the merchant's last {len(recent)} loaded files): "
            "check that it holds every order of its period, as every customer must be asked "
            "for a review",
        )
    ]


def _ref_gaps(profile: FileProfile, profiles: Sequence[FileProfile]) -> list[FileWarning]:
    """Customers taken out of numbered orders leave holes in the numbers: the share of each run
    the references fill falls below the merchant's usual share, by more than noise explains."""
    fills = [p.ref_fill for p in profiles if p.ref_span >= MIN_SPAN]
    if len(fills) < MIN_HISTORY or profile.ref_span < MIN_SPAN:
        return []
    usual = statistics.median(fills)
    if usual < NUMBERED_FILL:
        return []
    spread = 1.4826 * statistics.median(abs(f - usual) for f in fills) / usual
    noise = math.sqrt((1 - usual) / (usual * profile.ref_span))
    drop = 1 - profile.ref_fill / usual
    if drop <= max(MIN_FILL_DROP, NOISE_FACTOR * noise, NOISE_FACTOR * spread):
        return []
    missing = profile.ref_span - profile.ref_present
    return [
        FileWarning(
            "order_ref_gaps",
            f"this file's order numbers fill {profile.ref_fill:.0%} of the ranges they cover "
            f"({missing:,} numbers missing), against {usual:.0%} usually (the merchant's last "
            f"{len(fills)} files): check that no order was left out of the file",
        )
    ]


def _missing_values(
    profile: FileProfile, profiles: Sequence[FileProfile], column: str, code: str
) -> list[FileWarning]:
    """A value with orders in each of the last files (at least ``MIN_HISTORY``), expected here
    ``MIN_EXPECTED`` times or more at its usual share, and absent."""
    if len(profiles) < MIN_HISTORY:
        return []
    here = _values(profile, column)
    regular = set.intersection(*(set(_values(p, column)) for p in profiles)) - set(here)
    found = []
    for value in sorted(regular):
        share = statistics.median(_values(p, column)[value] / p.orders for p in profiles)
        expected = share * profile.orders
        if expected >= MIN_EXPECTED:
            found.append(
                FileWarning(
                    code,
                    f"{column} {value!r} has no order in this file, though it had orders in "
                    f"each of the merchant's last {len(profiles)} files (about {expected:,.0f} "
                    "expected here): check that its customers were not left out",
                )
            )
    return found


def _values(profile: FileProfile, column: str) -> Mapping[str, int]:
    return profile.shops if column == "shop_id" else profile.languages


def profile_json(profile: FileProfile) -> str:
    """The profile as ``imports.profile`` keeps it: each column's biggest values only."""
    return json.dumps(
        {
            "v": PROFILE_VERSION,
            "valid_rows": profile.valid_rows,
            "orders": profile.orders,
            "shops": _biggest(profile.shops),
            "languages": _biggest(profile.languages),
            "ref_present": profile.ref_present,
            "ref_span": profile.ref_span,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def _biggest(counts: Mapping[str, int]) -> dict[str, int]:
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return dict(ranked[:MAX_STORED_VALUES])


def read_profile(text: str | None) -> FileProfile | None:
    """A stored profile; None when there is none or it is of another version."""
    if not text:
        return None
    data: dict[str, Any] = json.loads(text)
    if data.get("v") != PROFILE_VERSION:
        return None
    return FileProfile(
        valid_rows=int(data["valid_rows"]),
        orders=int(data["orders"]),
        shops={str(k): int(v) for k, v in data["shops"].items()},
        languages={str(k): int(v) for k, v in data["languages"].items()},
        ref_present=int(data["ref_present"]),
        ref_span=int(data["ref_span"]),
    )


def warnings_json(found: Sequence[FileWarning]) -> str:
    """The warnings as ``imports.warnings`` keeps them: a JSON list."""
    return json.dumps([w.to_dict() for w in found], ensure_ascii=False)


def read_warnings(text: str | None) -> list[FileWarning]:
    """Stored warnings; none for a file that was not compared (null)."""
    if not text:
        return []
    return [FileWarning(str(w["code"]), str(w["message"])) for w in json.loads(text)]
