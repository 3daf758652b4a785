"""The merchants file: defaults, and errors naming the merchant and the key (contract 6)."""

from __future__ import annotations

import os

import pytest
import yaml

from review_ingest import settings
from review_ingest.core import merchants
from review_ingest.core.merchants import load_merchants, read_merchants
from review_ingest.errors import ConfigError


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


def test_invalid_yaml_is_a_config_error_naming_the_file(tmp_path):
    path = write(tmp_path, "merchants:\n  acme: [template: store\n")
    with pytest.raises(ConfigError, match=f"merchants file {path} is not valid YAML"):
        read_merchants(path)


def test_libyaml_reads_the_sample_file_as_pyyaml_does():
    path = settings.INCLUDE_DIR / "merchants.yaml"
    text = path.read_text(encoding="utf-8")
    assert merchants.YAML_LOADER is yaml.CSafeLoader  # PyYAML's wheels carry libyaml
    assert yaml.load(text, Loader=merchants.YAML_LOADER) == yaml.safe_load(text)


def test_an_unchanged_file_is_not_parsed_again(tmp_path, monkeypatch):
    path = write(tmp_path, "merchants:\n  acme:\n    template: store\n")
    first = read_merchants(path)
    monkeypatch.setattr(merchants, "parse_merchant", refuse_to_parse)
    again = read_merchants(path)
    assert again == first
    # Each reader gets its own dicts: what one task changes, the next does not see.
    again.merchants.clear()
    assert read_merchants(path) == first


def test_a_changed_file_is_read_again_even_at_the_same_size_and_time(tmp_path):
    path = write(tmp_path, "merchants:\n  acme:\n    template: store\n")
    stat = path.stat()
    assert read_merchants(path).merchants["acme"].template == "store"
    path.write_text("merchants:\n  acme:\n    template: sTore\n")  # same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same time
    assert "acme" in read_merchants(path).problems
    path.write_text("merchants:\n  acme:\n    template: store\n")
    assert read_merchants(path).merchants["acme"].template == "store"
    path.unlink()
    with pytest.raises(ConfigError, match="not found"):
        read_merchants(path)


def refuse_to_parse(merchant_id: str, entry: object) -> None:
    raise AssertionError(f"merchant {merchant_id} parsed again")
