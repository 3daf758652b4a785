"""An upload form read as it arrives (contract section 12): the fields in memory (a few bytes
each), the file's bytes straight into a file, counted, and the reading stopped as soon as they
are over the limit, so that the server never holds more than that of a file.

Starlette's ``request.form()`` reads the whole body before anyone can look at it; this reads
``request.stream()`` with python-multipart's streaming parser instead. What comes before the
file part (a form's hidden CSRF token) is handed to ``before_file`` before any of its bytes are
written.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass, field
from typing import BinaryIO

from python_multipart.multipart import MultipartParser, parse_options_header

#: Room for the other fields, the part headers and the boundaries, above the file's limit.
MARGIN = 64 * 1024
#: A field other than the file holds a merchant id, a token, a check box: a few bytes.
MAX_FIELD_BYTES = 4096
FILE_FIELD = "file"


class FormRefused(Exception):
    """The form cannot be read (the message says why)."""


class TooLarge(FormRefused):
    """The file, or the whole body, is over the limit: reading stopped there."""


class BadForm(FormRefused):
    """Not a multipart form of one file, or broken: ``field`` names the culprit, ``message`` says
    why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass
class UploadForm:
    """What the form held: its fields, and the file's name (None: no file part) and size."""

    fields: dict[str, str] = field(default_factory=dict)
    file_name: str | None = None
    size: int = 0


async def read_upload_form(
    content_type: str | None,
    chunks: AsyncIterable[bytes],
    sink: BinaryIO,
    *,
    max_file_bytes: int,
    before_file: Callable[[dict[str, str]], None] = lambda fields: None,
) -> UploadForm:
    """Read a ``multipart/form-data`` body: the part ``file`` into ``sink``, the others as
    fields. TooLarge as soon as the file passes ``max_file_bytes`` (or the body that plus
    ``MARGIN``); BadForm for what is not such a form."""
    kind, options = parse_options_header(content_type or "")
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise BadForm(FILE_FIELD, "send the file in a multipart/form-data form")
    reader = _Reader(sink, max_file_bytes, before_file)
    parser = MultipartParser(boundary, reader.callbacks())
    received = 0
    try:
        async for chunk in chunks:
            received += len(chunk)
            if received > max_file_bytes + MARGIN:
                raise TooLarge(f"the form is over {max_file_bytes + MARGIN:,} bytes")
            parser.write(chunk)
        parser.finalize()
    except FormRefused:
        raise
    except ValueError as exc:  # python-multipart's parse errors
        raise BadForm("form", f"the form is broken ({exc})") from None
    if not reader.ended:
        raise BadForm("form", "the form was cut short")
    return reader.form


class _Reader:
    """python-multipart's callbacks, building an ``UploadForm``."""

    def __init__(
        self,
        sink: BinaryIO,
        max_file_bytes: int,
        before_file: Callable[[dict[str, str]], None],
    ) -> None:
        self.form = UploadForm()
        self.ended = False
        self._sink = sink
        self._max = max_file_bytes
        self._before_file = before_file
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._name = ""
        self._value = bytearray()
        self._in_file = False

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_part,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _part_begin(self) -> None:
        self._disposition = b""
        self._value = bytearray()
        self._in_file = False

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_part(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        self._name = _text(options.get(b"name", b""))
        if self._name == FILE_FIELD and b"filename" in options:
            if self.form.file_name is not None:
                raise BadForm(FILE_FIELD, "send one file only")
            self._before_file(self.form.fields)
            self.form.file_name = _text(options[b"filename"])
            self._in_file = True

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self.form.size += end - start
            if self.form.size > self._max:
                raise TooLarge(f"the file is over {self._max:,} bytes")
            self._sink.write(data[start:end])
            return
        self._value += data[start:end]
        if len(self._value) > MAX_FIELD_BYTES:
            raise BadForm(self._name, f"more than {MAX_FIELD_BYTES} bytes")

    def _part_end(self) -> None:
        if not self._in_file and self._name:
            self.form.fields[self._name] = _text(bytes(self._value))

    def _end(self) -> None:
        self.ended = True


def _text(value: bytes) -> str:
    """A browser sends names and values as UTF-8."""
    return value.decode("utf-8", errors="replace")
