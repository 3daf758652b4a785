"""The upload form read as it arrives (``web/form_stream.py``), on a fake ASGI body: fields in
memory, the file straight to disk, and reading stopped just past 5 MB."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator

import pytest

from review_ingest.web import form_stream

BOUNDARY = "----form-boundary-7MA4YWxkTrZu0gW"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"
LIMIT = 5 * 1024 * 1024


def part(name: str, value: bytes, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    head = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
    if filename is not None:
        head += "Content-Type: text/csv\r\n"
    return head.encode() + b"\r\n" + value + b"\r\n"


def body(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


class Stream:
    """An ASGI request body in chunks, counting what the reader took."""

    def __init__(self, data: bytes, chunk: int = 64 * 1024) -> None:
        self.chunks = [data[i : i + chunk] for i in range(0, len(data), chunk)]
        self.taken = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            self.taken += len(chunk)
            yield chunk


def read(data: bytes | Stream, sink: io.BytesIO | None = None, **kwargs) -> form_stream.UploadForm:
    stream = data if isinstance(data, Stream) else Stream(data)
    kwargs.setdefault("max_file_bytes", LIMIT)
    return asyncio.run(
        form_stream.read_upload_form(CONTENT_TYPE, stream, sink or io.BytesIO(), **kwargs)
    )


def test_fields_and_the_file() -> None:
    sink = io.BytesIO()
    content = b"order_ref;email\r\n" * 1000
    form = read(
        body(
            part("csrf_token", b"tok"),
            part("merchant_id", b"acme"),
            part("file", content, "../orders é.csv"),
            part("send_now", b"true"),
        ),
        sink,
    )
    assert form.fields == {"csrf_token": "tok", "merchant_id": "acme", "send_now": "true"}
    assert form.file_name == "../orders é.csv"
    assert form.size == len(content) and sink.getvalue() == content


def test_no_file_part_and_an_empty_file_name_are_told_apart() -> None:
    assert read(body(part("merchant_id", b"acme"))).file_name is None
    form = read(body(part("file", b"", "")))
    assert form.file_name == "" and form.size == 0


def test_what_came_before_the_file_is_seen_before_its_bytes() -> None:
    seen: list[dict[str, str]] = []
    sink = io.BytesIO()

    def refuse(fields: dict[str, str]) -> None:
        seen.append(dict(fields))
        raise PermissionError("no token")

    with pytest.raises(PermissionError):
        read(
            body(part("csrf_token", b"t"), part("file", b"x" * 1000, "a.csv")),
            sink,
            before_file=refuse,
        )
    assert seen == [{"csrf_token": "t"}]
    assert sink.getvalue() == b""


def test_reading_stops_just_past_the_limit() -> None:
    sink = io.BytesIO()
    stream = Stream(body(part("merchant_id", b"acme"), part("file", b"x" * (LIMIT * 3), "a.csv")))
    with pytest.raises(form_stream.TooLarge):
        read(stream, sink)
    assert stream.taken <= LIMIT + form_stream.MARGIN + 64 * 1024
    assert len(sink.getvalue()) <= LIMIT


def test_a_file_of_exactly_the_limit_is_read() -> None:
    form = read(body(part("file", b"x" * LIMIT, "a.csv")))
    assert form.size == LIMIT


def test_one_byte_over_is_too_large() -> None:
    with pytest.raises(form_stream.TooLarge):
        read(body(part("file", b"x" * (LIMIT + 1), "a.csv")))


def test_a_huge_field_or_many_parts_are_too_large_too() -> None:
    with pytest.raises(form_stream.BadForm, match="merchant_id"):
        read(body(part("merchant_id", b"a" * 100_000)))
    many = body(*(part(f"f{i}", b"v" * 1000) for i in range(200)))
    with pytest.raises(form_stream.TooLarge):
        read(many, max_file_bytes=1000)


def test_two_files_are_refused() -> None:
    with pytest.raises(form_stream.BadForm, match="one file"):
        read(body(part("file", b"a", "a.csv"), part("file", b"b", "b.csv")))


@pytest.mark.parametrize(
    "content_type", [None, "", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_not_a_multipart_form(content_type: str | None) -> None:
    with pytest.raises(form_stream.BadForm, match="multipart"):
        asyncio.run(
            form_stream.read_upload_form(
                content_type, Stream(b"a=b"), io.BytesIO(), max_file_bytes=LIMIT
            )
        )


def test_a_broken_body_is_a_bad_form() -> None:
    with pytest.raises(form_stream.BadForm):
        read(b"--" + BOUNDARY.encode() + b"\r\nnonsense without headers end")
