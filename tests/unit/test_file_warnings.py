"""Signs of a filtered file (issue 27, ``review_ingest.core.warnings``): each sign flags what it
should and not what it should not, and over a seeded history of steady merchants the signs
flag at most 1 % of their files while catching files filtered in several ways."""

from __future__ import annotations

import pytest

from review_ingest.core import warnings
from review_ingest.core.warnings import FileProfile, PastFile, find_warnings, profile_of
from tests.kit import order_history


def codes(profile: FileProfile, history: list[PastFile], weekday: int | None = None) -> list[str]:
    return [w.code for w in find_warnings(profile, history, weekday)]


def rows(refs: list[str], shop: str = "", language: str = "") -> list[dict[str, str]]:
    return [{"order_ref": ref, "shop_id": shop, "language": language} for ref in refs]


def numbered(first: int, count: int, skip_every: int = 0) -> list[str]:
    """``count`` order references from ``WEB-<first>``, every ``skip_every``-th number unused."""
    refs, number = [], first
    while len(refs) < count:
        if not skip_every or number % skip_every:
            refs.append(f"WEB-{number}")
        number += 1
    return refs


def past(valid_rows: int, weekday: int | None = None, **profile: object) -> PastFile:
    return PastFile(valid_rows, FileProfile(valid_rows, valid_rows, **profile), weekday)


# --- volume_drop -------------------------------------------------------------------------------


def test_volume_drop_flags_under_half_the_median_of_the_last_files():
    history = [past(n) for n in (200, 210, 190, 200, 1000, 180, 220, 195)]

    assert codes(FileProfile(99, 99), history) == ["volume_drop"]
    assert codes(FileProfile(100, 100), history) == [], "half the median (200) is not under it"
    message = find_warnings(FileProfile(99, 99), history)[0].message
    assert "99 valid rows" in message and "200" in message and "last 8 loaded files" in message


def test_volume_drop_needs_four_files_and_reads_only_the_last_eight():
    assert codes(FileProfile(10, 10), [past(200)] * 3) == []
    assert codes(FileProfile(10, 10), [past(200)] * 4) == ["volume_drop"]
    # The ninth file and older ones do not count: the last eight were small.
    assert codes(FileProfile(10, 10), [past(15)] * 8 + [past(5000)] * 8) == []


def test_a_quiet_weekday_like_the_last_one_is_the_merchants_rhythm_not_a_drop():
    sunday = 6
    # Saturday back to last Monday at 400 valid rows, last Sunday at 150.
    week = [past(400, weekday=day) for day in (5, 4, 3, 2, 1, 0)] + [past(150, weekday=sunday)]

    assert codes(FileProfile(140, 140), week, sunday) == []
    assert codes(FileProfile(70, 70), week, sunday) == ["volume_drop"], "half last Sunday's"
    assert codes(FileProfile(140, 140), week, 0) == ["volume_drop"], "a Monday that small"
    usual_sunday = week[:6] + [past(380, weekday=sunday)]
    assert codes(FileProfile(190, 190), usual_sunday, sunday) == ["volume_drop"]


# --- order_ref_gaps ----------------------------------------------------------------------------


def test_numbered_runs_count_references_in_runs_of_close_numbers():
    assert warnings.numbered_runs(["WEB-101", "WEB-102", "WEB-104"]) == (3, 4)
    # A number far from the others (a late order) and a lone series count for nothing.
    assert warnings.numbered_runs(["WEB-101", "WEB-102", "WEB-900", "X-5"]) == (2, 2)
    assert warnings.numbered_runs(["A-1", "A-3", "B-1", "B-2", "no-number"]) == (4, 5)
    assert warnings.numbered_runs([f"R{n * 7919 % 10**9:09d}" for n in range(50)]) == (0, 0)


def sequential_history(files: int = 8) -> list[PastFile]:
    """Files of 500 orders numbered in sequence, one number in 30 unused (cancelled)."""
    history = []
    for n in range(files):
        profile = profile_of(rows(numbered(100_000 + 600 * n, 500, 30)), "fr")
        history.insert(0, PastFile(profile.valid_rows, profile))
    return history


def test_order_ref_gaps_flags_a_tenth_of_the_orders_left_out_of_numbered_orders():
    history = sequential_history()
    steady = numbered(200_000, 500, 30)
    unhappy_left_out = [ref for n, ref in enumerate(steady) if n % 10 != 3]

    assert codes(profile_of(rows(steady), "fr"), history) == []
    found = find_warnings(profile_of(rows(unhappy_left_out), "fr"), history)
    assert [w.code for w in found] == ["order_ref_gaps"]
    assert "numbers missing" in found[0].message and "usually" in found[0].message


def test_order_ref_gaps_stays_quiet_without_numbers_in_sequence_or_history():
    randoms = [f"R{n * 7919 % 10**9:09d}" for n in range(400)]
    random_history = [PastFile(400, profile_of(rows(randoms), "fr"))] * 8

    assert codes(profile_of(rows(randoms[:360]), "fr"), random_history) == []
    thinned = numbered(200_000, 500, 30)[::2]
    assert codes(profile_of(rows(thinned), "fr"), sequential_history(3)) == [], "3 files"


# --- missing_shop, missing_language --------------------------------------------------------


def shops_history() -> list[PastFile]:
    return [past(300, shops={"PAR": 150, "LYO": 100, "NAN": 45, "TINY": 5})] * 4


def test_missing_shop_flags_a_shop_of_every_recent_file_that_vanished():
    without_lyon = FileProfile(300, 300, shops={"PAR": 200, "NAN": 50, "TINY": 5})

    found = find_warnings(without_lyon, shops_history())

    assert [w.code for w in found] == ["missing_shop"]
    assert "'LYO'" in found[0].message and "about 100 expected" in found[0].message


def test_missing_shop_ignores_small_shops_and_shops_not_in_every_file():
    without_tiny = FileProfile(300, 300, shops={"PAR": 150, "LYO": 100, "NAN": 50})
    assert codes(without_tiny, shops_history()) == [], "5 orders expected: chance"
    irregular = shops_history()[:3] + [past(300, shops={"PAR": 200, "NAN": 100})]
    without_lyon = FileProfile(300, 300, shops={"PAR": 200, "NAN": 100})
    assert codes(without_lyon, irregular) == []
    assert codes(without_lyon, shops_history()[:3]) == [], "three files"


def test_missing_language_flags_a_language_that_vanished():
    history = [past(400, languages={"fr": 360, "en": 40})] * 5
    only_french = profile_of(rows(numbered(1, 400), language="FR"), "fr")

    assert only_french.languages == {"fr": 400}
    assert codes(only_french, history) == ["missing_language"]
    assert codes(FileProfile(400, 400, languages={"fr": 370, "en": 30}), history) == []


def test_an_order_counts_once_with_the_shop_and_language_of_its_first_row():
    file_rows = [
        {"order_ref": "A-1", "shop_id": "PAR", "language": "EN"},
        {"order_ref": "A-1", "shop_id": "PAR", "language": "EN"},
        {"order_ref": "A-2", "shop_id": "LYO", "language": ""},
    ]

    profile = profile_of(file_rows, "fr")

    assert (profile.valid_rows, profile.orders) == (3, 2)
    assert (profile.shops, profile.languages) == ({"PAR": 1, "LYO": 1}, {"en": 1, "fr": 1})


# --- stored forms ------------------------------------------------------------------------------


def test_a_profile_is_stored_as_compact_json_and_read_back():
    shops = {f"S{n:03d}": 1000 - n for n in range(150)}
    profile = FileProfile(1200, 1000, shops, {"fr": 990, "en": 10}, 950, 1000)

    back = warnings.read_profile(warnings.profile_json(profile))

    assert back is not None and back.languages == profile.languages
    counts = (back.valid_rows, back.orders, back.ref_present, back.ref_span)
    assert counts == (1200, 1000, 950, 1000)
    assert list(back.shops) == list(shops)[: warnings.MAX_STORED_VALUES], "the biggest kept"
    assert warnings.read_profile(None) is None
    assert warnings.read_profile('{"v": 99}') is None, "another version is not compared"


def test_warnings_are_stored_as_a_json_list():
    found = [warnings.FileWarning("volume_drop", "fewer rows")]

    assert warnings.read_warnings(warnings.warnings_json(found)) == found
    assert warnings.read_warnings(None) == []


# --- false alarms and detection over a seeded history ------------------------------------------


@pytest.fixture(scope="module")
def measured() -> order_history.Measured:
    return order_history.measure(count=12, days=50, seed=27)


def test_steady_merchants_get_at_most_one_percent_of_their_files_flagged(measured):
    assert measured.steady > 300
    assert measured.false_alarm_rate <= 0.01, (measured.false_alarms, measured.false_by_code)


@pytest.mark.parametrize(
    ("kind", "at_least"),
    [
        ("half_the_orders", 0.6),
        ("one_shop", 0.9),
        ("one_language", 0.9),
        ("unhappy_customers: numbered, each file a stretch of numbers", 0.85),
    ],
)
def test_files_filtered_of_some_customers_are_flagged(measured, kind, at_least):
    assert measured.filtered[kind] >= 30
    assert measured.detection_rate(kind) >= at_least, (kind, measured.detected.get(kind))
