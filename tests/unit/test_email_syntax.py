"""``rules.is_valid_email`` judges every address exactly as ``email-validator`` does, although it
checks a plain address by its domain only (once per domain): compared on edge cases of every
rule the library has, and on many random addresses built to fall on both sides of them."""

from __future__ import annotations

import random

import pytest
from email_validator import EmailNotValidError, validate_email

from review_ingest.core import rules

LOCAL_CHARS = "abcxyzABCXYZ0189_+-."
DOMAIN_LABELS = [
    "example",
    "mail",
    "x",
    "a" * 63,
    "a" * 64,
    "b-c",
    "-bc",
    "bc-",
    "xn--bcher-kva",
    "ab--cd",
    "xn--",
    "123",
    "UPPER",
    "b_c",
    "",
]
TOP_LEVELS = [
    "fr",
    "com",
    "co.uk",
    "COM",
    "1",
    "123",
    "local",
    "localhost",
    "test",
    "invalid",
    "arpa",
    "onion",
    "in-addr.arpa",
    "example",
    "x",
    "museum",
    "c0m",
    "",
]
EDGE_CASES = [
    "jane@example.com",
    "jane.example.com",
    "not-an-email-1",
    "jane(at)example.com",
    "Jane.Doe+tag@Mail.Example.FR",
    "a@b.c",
    "a@b",
    "a@localhost",
    "a@example.local",
    "a@sub.test",
    "a@10.0.0.1",
    "a@[10.0.0.1]",
    "a..b@example.com",
    ".a@example.com",
    "a.@example.com",
    "a@.example.com",
    "a@example..com",
    "a@example.com.",
    "a@-example.com",
    "a@example-.com",
    "@example.com",
    "a@",
    "a@@example.com",
    "a@b@example.com",
    '"a b"@example.com',
    "Jane <jane@example.com>",
    "jane@exämple.com",
    "jäne@example.com",
    "jane@xn--exmple-cua.com",
    "jane@example.com\n",
    " jane@example.com",
    "jane@example.com ",
    "jane@ex ample.com",
    "o'neil@example.com",
    "a{b}@example.com",
    "a" * 64 + "@example.com",
    "a" * 65 + "@example.com",
    "a@" + "b" * 63 + ".com",
    "a@" + "b" * 64 + ".com",
    "a" * 64 + "@" + ".".join(["b" * 60] * 3) + ".com",
    "a" * 64 + "@" + ".".join(["b" * 61] * 3) + ".fr",
    "a" * 64 + "@" + ".".join(["b" * 62] * 3) + ".fr",
    "a" * 10 + "@" + ".".join(["b" * 63] * 4) + ".fr",
    "ab--cd@example.com",
    "a@ab--cd.example.com",
    "a@xn--ab.example.com",
    "postmaster@example.com",
    "a@example.123",
    "a@example.c0m",
    "a@EXAMPLE.COM",
]


def library(address: str) -> bool:
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


def random_addresses(count: int, seed: int = 20261201) -> list[str]:
    rng = random.Random(seed)
    found = []
    for _ in range(count):
        local = "".join(
            rng.choice(LOCAL_CHARS) for _ in range(rng.choice([1, 2, 5, 20, 63, 64, 65]))
        )
        labels = [rng.choice(DOMAIN_LABELS) for _ in range(rng.randint(0, 4))]
        domain = ".".join([*labels, rng.choice(TOP_LEVELS)])
        found.append(f"{local}@{domain}")
    return found


@pytest.mark.parametrize("address", EDGE_CASES)
def test_an_edge_case_is_judged_as_the_library_judges_it(address):
    assert rules.is_valid_email(address) == library(address)


def test_random_addresses_are_judged_as_the_library_judges_them():
    addresses = random_addresses(20_000)
    plain = [a for a in addresses if rules._PLAIN_ADDRESS.fullmatch(a)]
    disagree = [a for a in addresses if rules.is_valid_email(a) != library(a)]
    assert disagree == []
    # Both sides of the fast path, and both verdicts on it, were tried.
    assert len(plain) > 5_000 and len(addresses) - len(plain) > 5_000
    assert 500 < sum(map(library, plain)) < len(plain) - 500
