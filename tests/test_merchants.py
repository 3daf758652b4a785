"""The merchants file: defaults, and errors naming the merchant and the key (contract 6)."""

from __future__ import annotations

import pytest

from review_ingest.errors import ConfigError
from review_ingest.merchants import load_merchants, read_merchants


def write(tmp_path, text: str):
    path = tmp_path / "merchants.yaml"
    path.write_text(text)
    return path


def test_only_template_is_required_and_defaults_follow_the_contract(tmp_path):
    (acme,) = load_merchants(write(tmp_path, "merchants:\n  acme:\n    template: store\n")).values()
    assert (
        acme.default_delay,
        acme.default_delay_product,
        acme.max_order_age_days,
        acme.timezone,
        acme.language,
        acme.sftp,
    ) == (0, 0, 92, "Europe/Paris", "fr", None)


def test_sftp_block(tmp_path):
    text = (
        "merchants:\n  acme:\n    template: website\n"
        "    sftp:\n      conn_id: c\n      root: /acme\n"
    )
    (acme,) = load_merchants(write(tmp_path, text)).values()
    assert (acme.sftp.conn_id, acme.sftp.inbox) == ("c", "/acme/orders")


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ("template: nope", "'template'"),
        ("template: website\n    default_delay: 31", "'default_delay'"),
        ("template: website\n    default_delay_product: -1", "'default_delay_product'"),
        ("template: website\n    max_order_age_days: x", "'max_order_age_days'"),
        ("template: website\n    timezone: Mars/Base", "'timezone'"),
        ("template: website\n    language: french", "'language'"),
        ("template: website\n    colour: red", "'colour'"),
        ("template: website\n    sftp:\n      conn_id: c", "'sftp'"),
        ("template: website\n    sftp:\n      conn_id: c\n      root: ../up", "'sftp.root'"),
    ],
)
def test_a_wrong_value_names_merchant_and_key(tmp_path, entry, words):
    text = f"merchants:\n  acme:\n    {entry}\n  good:\n    template: store\n"
    read = read_merchants(write(tmp_path, text))
    assert list(read.merchants) == ["good"], "the other merchants are still usable"
    assert "'acme'" in read.problems["acme"] and words in read.problems["acme"]
    with pytest.raises(ConfigError, match="'acme'"):
        load_merchants(write(tmp_path, text))


@pytest.mark.parametrize("merchant_id", ["Acme", "-acme", "a" * 65, "ac me"])
def test_bad_merchant_ids_are_refused(tmp_path, merchant_id):
    read = read_merchants(write(tmp_path, f"merchants:\n  '{merchant_id}':\n    template: store\n"))
    assert merchant_id in read.problems


def test_unreadable_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        read_merchants(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="merchants"):
        read_merchants(write(tmp_path, "- a list\n"))
