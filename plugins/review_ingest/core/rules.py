"""The value rules of contract sections 1.2 and 3: formats, dates, and the words of each error.

The Great Expectations suites (``include/expectations/``) hold the checks; this module gives them
what a regex cannot: parsed dates and e-mail syntax, as derived columns, and turns each failure
into the message a merchant reads.
"""

from __future__ import annotations

import datetime as dt
import re
from functools import lru_cache
from zoneinfo import ZoneInfo

from email_validator import EmailNotValidError, validate_email

from review_ingest.core.template_columns import COLUMNS, PERSONAL

DELAY = r"^(?:[0-9]|[0-2][0-9]|30)$"
GTIN = r"^(?:[0-9]{8}|[0-9]{12,14})$"
URL = (
    r"^[Hh][Tt][Tt][Pp][Ss]?://(?:[^\s/?#@]*@)?(?:\[[0-9A-Fa-f:.]+\]|[^\s/?#@:\[\]]+)"
    r"(?::[0-9]*)?(?:[/?#]\S*)?$"
)
#: C0 and C1 control characters, DEL; a tab is allowed except in ``order_ref``.
CONTROL = r"[\x00-\x08\x0a-\x1f\x7f-\x9f]"
CONTROL_WITH_TAB = r"[\x00-\x1f\x7f-\x9f]"

#: ISO 639-1, the two-letter codes.
LANGUAGES = frozenset(
    """aa ab ae af ak am an ar as av ay az ba be bg bi bm bn bo br bs ca ce ch co cr cs cu cv cy
    da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu
    hy hz ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb
    lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn no nr nv ny oc oj om
    or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so sq sr ss st su sv sw
    ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo za zh zu
    """.split()
)


def _any_case(letters: str) -> str:
    return "".join(letter + letter.upper() for letter in letters)


def _language_regex(codes: frozenset[str]) -> str:
    """The codes in any case of their letters, as one regex (``[aA][aAbBeE...]|...``).

    It says what a set of each code's four spellings says, but as one short string, which
    matters: Great Expectations copies an expectation's configuration for each metric key.
    """
    seconds: dict[str, str] = {}
    for code in sorted(codes):
        seconds[code[0]] = seconds.get(code[0], "") + code[1]
    alternatives = "|".join(f"[{_any_case(a)}][{_any_case(b)}]" for a, b in seconds.items())
    return rf"\A(?:{alternatives})\Z"


LANGUAGE = _language_regex(LANGUAGES)

_DATE = re.compile(
    r"^(?:(?P<d1>\d{2})(?P<s1>[-/])(?P<m1>\d{2})(?P=s1)(?P<y1>\d{4})"
    r"|(?P<y2>\d{4})(?P<s2>[-/])(?P<m2>\d{2})(?P=s2)(?P<d2>\d{2}))"
    r"(?: (?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2}))?)?$",
    re.ASCII,
)
_ISO = re.compile(
    r"^(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2}))?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?$",
    re.ASCII,
)

#: When one value breaks several rules, the first of these gives its only error.
PRIORITY = (
    "value_too_long",
    "invalid_characters",
    "missing_value",
    "invalid_email",
    "invalid_date",
    "invalid_delay",
    "invalid_language",
    "invalid_url",
    "invalid_gtin",
    "future_date",
    "order_too_old",
    "conflicting_order",
)


@lru_cache(maxsize=4096)
def parse_order_date(value: str, tz: ZoneInfo) -> dt.datetime | None:
    """The moment an ``order_date`` stands for, in the merchant's time zone, or None if invalid.

    Cached: a file holds few distinct dates, and three stages read each row's."""
    match = _DATE.match(value)
    if match:
        g = match.groupdict()
        year, month, day = (g["y1"], g["m1"], g["d1"]) if g["y1"] else (g["y2"], g["m2"], g["d2"])
        return _moment(year, month, day, g["H"], g["M"], g["S"], tz)
    match = _ISO.match(value)
    if not match:
        return None
    g = match.groupdict()
    moment = _moment(g["y"], g["m"], g["d"], g["H"], g["M"], g["S"], tz)
    if moment is None or not g["tz"]:
        return moment
    offset = _offset(g["tz"])
    if offset is None:
        return None
    return moment.replace(tzinfo=offset).astimezone(tz)


def _moment(
    year: str,
    month: str,
    day: str,
    hour: str | None,
    minute: str | None,
    second: str | None,
    tz: ZoneInfo,
) -> dt.datetime | None:
    try:
        return dt.datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            tzinfo=tz,
        )
    except ValueError:
        return None


def _offset(text: str) -> dt.timezone | None:
    if text == "Z":
        return dt.UTC
    hours, minutes = int(text[1:3]), int(text[4:6])
    if hours > 23 or minutes > 59:
        return None
    sign = -1 if text[0] == "-" else 1
    return dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))


#: An address whose local part is plain ASCII dot-atom (letters, digits, ``_+-``, single dots
#: inside) and whose domain is ASCII: e-mail-validator judges its local part valid when it has at
#: most 64 characters and the whole at most 254, so the domain alone decides.
_PLAIN_ADDRESS = re.compile(
    r"(?P<local>[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*)@(?P<domain>[A-Za-z0-9.-]+)", re.ASCII
)
_LOCAL_MAX, _ADDRESS_MAX = 64, 254


def is_valid_email(value: str) -> bool:
    """Syntax only, as ``email-validator`` judges it with no deliverability check.

    A file holds thousands of addresses but few domains, and the domain (IDNA) is the costly
    part: a plain address is judged by its domain, checked once per domain; any other goes to
    ``email-validator`` whole. A test compares both ways.
    """
    if "@" not in value:
        return False  # the library's first check: exactly one @-sign
    plain = _PLAIN_ADDRESS.fullmatch(value)
    if plain and len(plain["local"]) <= _LOCAL_MAX and len(value) <= _ADDRESS_MAX:
        return _accepted("a@" + plain["domain"])
    return _accepted(value)


@lru_cache(maxsize=8192)
def _accepted(address: str) -> bool:
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


#: The words of each error code; ``{shown}`` is the value, quoted, when it may be shown.
_TEXTS = {
    "missing_value": "{column} is required and is empty",
    "invalid_characters": "{column} holds a control character (a line break, NUL...){tab}",
    "invalid_email": "email{shown} is not a valid e-mail address",
    "invalid_date": "order_date{shown} is not a date in one of the accepted formats "
    "(dd-mm-yyyy, yyyy-mm-dd, dd/mm/yyyy, yyyy/mm/dd, optionally with a time) "
    "or is not a day of the calendar",
    "future_date": "order_date{shown} is later than the day of the import",
    "order_too_old": "order_date{shown} is older than the merchant's maximum order age",
    "invalid_delay": "{column}{shown} must be a whole number of days from 0 to 30",
    "invalid_language": "language{shown} is not a two-letter ISO 639-1 code (fr, en...)",
    "invalid_url": "{column}{shown} is not an absolute http:// or https:// address",
    "invalid_gtin": "gtin_ean{shown} must be 8, 12, 13 or 14 digits",
    "value_too_long": "{column} is longer than {limit} characters",
}


def message(code: str, column: str | None, value: str | None) -> str:
    """The words a merchant reads for one error; personal values are never quoted."""
    return _text(code, column, _shown(column, value))


@lru_cache(maxsize=4096)
def _text(code: str, column: str | None, shown: str) -> str:
    """One string per distinct text: an all-bad file repeats the same few texts for every
    row, and holds them for its whole import."""
    limit = COLUMNS[column].max_length if column in COLUMNS else None
    tab = " or a tab" if column == "order_ref" else ""
    return _TEXTS[code].format(column=column, shown=shown, limit=limit, tab=tab)


def _shown(column: str | None, value: str | None) -> str:
    if column in PERSONAL or value is None:
        return ""
    if len(value) > 60:
        value = value[:57] + "..."
    return f" {value!r}"
