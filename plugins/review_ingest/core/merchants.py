"""The merchants file (``include/merchants.yaml``): who sends files, with which template."""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from review_ingest.core.rules import is_valid_email
from review_ingest.core.template_columns import TEMPLATES
from review_ingest.errors import ConfigError

MERCHANT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
#: libyaml's safe loader (PyYAML's wheels carry it), else PyYAML's own, several times slower.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_LANGUAGE = re.compile(r"^[a-z]{2}$")


@dataclass(frozen=True)
class SftpSource:
    conn_id: str
    root: str

    @property
    def inbox(self) -> str:
        return f"{self.root.rstrip('/')}/orders"


@dataclass(frozen=True)
class Merchant:
    merchant_id: str
    template: str
    default_delay: int = 0
    default_delay_product: int = 0
    max_order_age_days: int = 92
    timezone: str = "Europe/Paris"
    language: str = "fr"
    sftp: SftpSource | None = None
    #: A file whose rows with errors are more than this share of its rows is rejected whole
    #: (``too_many_errors``); None: no limit.
    max_error_rate: float | None = None
    #: The merchant's staff to tell about its files (never customers).
    notify: tuple[str, ...] = ()

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def validated_with(self) -> tuple[str, str, int]:
        """What files must share, with their import day, to be validated together: the
        template, the time zone and the oldest order day accepted."""
        return (self.template, self.timezone, self.max_order_age_days)


#: The settings ``check`` uses, which has no merchant (contract section 3).
def default_merchant(template: str) -> Merchant:
    return Merchant(merchant_id="check", template=template)


@dataclass(frozen=True)
class MerchantsFile:
    """The merchants file as read: the merchants that are right, and what is wrong with the others.

    One merchant's mistake must not stop the other merchants' files (contract section 6).
    """

    merchants: dict[str, Merchant]
    problems: dict[str, str]


#: The last file read at each path: the sha256 of its bytes, and what was read from them.
_last_read: dict[Path, tuple[bytes, MerchantsFile]] = {}


def read_merchants(path: Path) -> MerchantsFile:
    """Read the file; a merchant with a wrong key goes to ``problems``, naming merchant and key.

    A file that cannot be read at all raises ConfigError. Every task reads the whole file to find
    its merchant, so the bytes are parsed again only when they changed (a Celery worker parses
    them before forking its tasks: ``review_ingest.tasks.preload``). Each caller gets its own dicts.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(f"merchants file not found: {path}") from exc
    digest = hashlib.sha256(data).digest()
    last = _last_read.get(path)
    if last is None or last[0] != digest:
        last = _last_read[path] = (digest, _parse(path, data.decode("utf-8")))
    read = last[1]
    return MerchantsFile(merchants=dict(read.merchants), problems=dict(read.problems))


def _parse(path: Path, text: str) -> MerchantsFile:
    try:
        doc = yaml.load(text, Loader=YAML_LOADER) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"merchants file {path} is not valid YAML: {exc}") from exc
    entries = doc.get("merchants") if isinstance(doc, dict) else None
    if not isinstance(entries, dict):
        raise ConfigError(f"merchants file {path}: a top-level 'merchants:' mapping is required")
    merchants: dict[str, Merchant] = {}
    problems: dict[str, str] = {}
    for mid, entry in entries.items():
        try:
            merchants[str(mid)] = parse_merchant(str(mid), entry)
        except ConfigError as exc:
            problems[str(mid)] = str(exc)
    return MerchantsFile(merchants=merchants, problems=problems)


def load_merchants(path: Path) -> dict[str, Merchant]:
    """Every merchant of the file, or ConfigError for the first one that is wrong."""
    read = read_merchants(path)
    if read.problems:
        raise ConfigError(next(iter(read.problems.values())))
    return read.merchants


#: Every key a merchant's entry may hold.
_KNOWN_KEYS = frozenset(
    {
        "template",
        "default_delay",
        "default_delay_product",
        "max_order_age_days",
        "timezone",
        "language",
        "sftp",
        "max_error_rate",
        "notify",
    }
)
#: The whole-number keys and their bounds, both included.
_BOUNDED_KEYS = (
    ("default_delay", 0, 30),
    ("default_delay_product", 0, 30),
    ("max_order_age_days", 1, 3660),
)


def parse_merchant(merchant_id: str, entry: Any) -> Merchant:
    """One merchant's entry, checked; ConfigError names the merchant and its first wrong key."""
    entry = _entry(merchant_id, entry)
    values: dict[str, Any] = {
        "merchant_id": merchant_id,
        "template": _template(merchant_id, entry.get("template")),
    }
    values.update(_optional_values(merchant_id, entry))
    return Merchant(**values)


def _entry(merchant_id: str, entry: Any) -> dict[str, Any]:
    """The entry of a well-formed id, as a mapping holding known keys only."""
    if not MERCHANT_ID.match(merchant_id):
        raise ConfigError(
            f"merchant {merchant_id!r}: the id must match ^[a-z0-9][a-z0-9_-]{{0,63}}$"
        )
    if not isinstance(entry, dict):
        raise ConfigError(f"merchant {merchant_id!r}: expected a mapping of settings")
    for key in entry:
        if key not in _KNOWN_KEYS:
            raise ConfigError(f"merchant {merchant_id!r}: unknown key {key!r}")
    return entry


def _template(merchant_id: str, value: Any) -> str:
    """The template's name, which must be one of the contract's templates."""
    if value not in TEMPLATES:
        raise ConfigError(
            f"merchant {merchant_id!r}: key 'template' must be one of "
            f"{', '.join(TEMPLATES)} (got {value!r})"
        )
    return value


def _optional_values(merchant_id: str, entry: dict[str, Any]) -> dict[str, Any]:
    """The optional keys the entry holds, checked; a missing one keeps Merchant's default."""
    values: dict[str, Any] = {}
    for key, low, high in _BOUNDED_KEYS:
        if key in entry:
            values[key] = _int_between(merchant_id, key, entry[key], low, high)
    if "timezone" in entry:
        values["timezone"] = _timezone(merchant_id, entry["timezone"])
    if "language" in entry:
        values["language"] = _language(merchant_id, entry["language"])
    if entry.get("sftp") is not None:
        values["sftp"] = _sftp(merchant_id, entry["sftp"])
    if entry.get("max_error_rate") is not None:
        values["max_error_rate"] = _error_rate(merchant_id, entry["max_error_rate"])
    if entry.get("notify") is not None:
        values["notify"] = _addresses(merchant_id, entry["notify"])
    return values


def _error_rate(merchant_id: str, value: Any) -> float:
    """A share of a file's rows: a number above 0 and at most 1 (``0.02`` is 2 %)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 < value <= 1
    ):
        raise ConfigError(
            f"merchant {merchant_id!r}: key 'max_error_rate' must be a number above 0 and at "
            "most 1, the share of a file's rows (0.02 for 2 %)"
        )
    return float(value)


def _addresses(merchant_id: str, value: Any) -> tuple[str, ...]:
    """A list of e-mail addresses, each checked as the contract checks a customer's."""
    if not isinstance(value, list):
        raise ConfigError(
            f"merchant {merchant_id!r}: key 'notify' must be a list of e-mail addresses"
        )
    addresses = []
    for number, item in enumerate(value, start=1):
        address = item.strip() if isinstance(item, str) else ""
        if not is_valid_email(address):
            raise ConfigError(
                f"merchant {merchant_id!r}: key 'notify': item {number} is not an e-mail address"
            )
        addresses.append(address)
    return tuple(dict.fromkeys(addresses))


def _language(merchant_id: str, value: Any) -> str:
    """The language as a lower-case ISO 639-1 code."""
    lang = str(value).lower()
    if not _LANGUAGE.match(lang):
        raise ConfigError(f"merchant {merchant_id!r}: key 'language' must be an ISO 639-1 code")
    return lang


def _int_between(merchant_id: str, key: str, value: Any, low: int, high: int) -> int:
    """A whole number (not a boolean) from ``low`` to ``high``."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(
            f"merchant {merchant_id!r}: key {key!r} must be a whole number from {low} to {high}"
        )
    return value


def _timezone(merchant_id: str, value: Any) -> str:
    """The name of a time zone the system knows."""
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            f"merchant {merchant_id!r}: key 'timezone' is not a known time zone"
        ) from exc
    return str(value)


def _sftp(merchant_id: str, value: Any) -> SftpSource:
    """The SFTP source: a connection id and an absolute root without ``..``."""
    if not isinstance(value, dict) or not value.get("conn_id") or not value.get("root"):
        raise ConfigError(f"merchant {merchant_id!r}: key 'sftp' needs 'conn_id' and 'root'")
    root = str(value["root"])
    if not root.startswith("/") or ".." in root.split("/"):
        raise ConfigError(f"merchant {merchant_id!r}: key 'sftp.root' must be an absolute path")
    return SftpSource(conn_id=str(value["conn_id"]), root=root)
