"""orders_backfill's params read without a run: what is refused, naming it, and the SFTP source
accepted for a merchant with an sftp block. The runs: tests/integration/test_backfill.py."""

from __future__ import annotations

import pytest

from review_ingest.core.merchants import Merchant, SftpSource
from review_ingest.tasks import backfill


def conf(**kw):
    return {
        "merchant_id": "acme",
        "file": "q3.csv",
        "source": "upload",
        "dry_run": False,
        "send_now": False,
        **kw,
    }


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"merchant_id": "nobody"}, "unknown merchant_id 'nobody'"),
        ({"file": "../etc/passwd"}, "may not hold a path"),
        ({"source": "ftp"}, "source must be upload or sftp"),
        ({"source": "sftp"}, "has no sftp block"),
    ],
)
def test_backfill_params_are_refused_with_a_message_naming_them(params, words):
    merchants = {"acme": Merchant("acme", "website")}
    with pytest.raises(ValueError, match=words.replace("(", r"\(")):
        backfill.BackfillRequest.from_params(conf(**params), merchants)


def test_sftp_params_accepted_for_a_merchant_with_an_sftp_block():
    merchants = {"acme": Merchant("acme", "website", sftp=SftpSource("c", "/acme"))}
    request = backfill.BackfillRequest.from_params(conf(source="sftp", dry_run=None), merchants)
    assert (request.source, request.dry_run) == ("sftp", False)
