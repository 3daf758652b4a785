"""File-level checks and CSV reading (contract sections 1, 1.1 and 2), without GX."""

from __future__ import annotations

import pytest

from review_ingest.core.reading import FileRejected, ParsedFile, read_file
from review_ingest.core.template_columns import TEMPLATES
from review_ingest.settings import MAX_FILE_BYTES

WEBSITE = TEMPLATES["website"]
WEBSITE_PRODUCTS = TEMPLATES["website_products"]
HEADER = "order_ref;email;lastname;firstname;order_date"
ROW = "R1;a@example.com;Doe;Jane;05-11-2026"


def read(text: str | bytes, template=WEBSITE) -> ParsedFile:
    return read_file(text.encode() if isinstance(text, str) else text, template)


def rejected(text: str | bytes, template=WEBSITE) -> tuple[str, str]:
    with pytest.raises(FileRejected) as caught:
        read(text, template)
    return caught.value.rejection.code, caught.value.rejection.message


def lines_of(parsed: ParsedFile) -> list[int]:
    return [r.line for r in parsed.records]


# --- file_too_large -------------------------------------------------------------------------


def _file_of_size(size: int) -> bytes:
    head = f"{HEADER}\nR1;a@example.com;".encode()
    tail = b";Jane;05-11-2026\n"
    return head + b"x" * (size - len(head) - len(tail)) + tail


def test_a_file_of_exactly_5_mb_passes_the_size_check():
    data = _file_of_size(5_242_880)
    assert len(data) == MAX_FILE_BYTES == 5_242_880
    parsed = read(data)
    assert len(parsed.records) == 1


def test_one_byte_more_than_5_mb_is_file_too_large():
    data = _file_of_size(5_242_881)
    code, _ = rejected(data)
    assert code == "file_too_large"


def test_file_too_large_is_checked_before_empty_and_utf8():
    assert rejected(b" " * 5_242_881)[0] == "file_too_large"
    assert rejected(b"\xe9" * 5_242_881)[0] == "file_too_large"


# --- empty_file -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\n",
        b"\r\n\r\n",
        b"   \n\t\n",
        b";;;\n ; ; \n",
        b"\xef\xbb\xbf",
        b"\xef\xbb\xbf\n;;\n",
    ],
    ids=["zero-bytes", "lf", "crlf", "spaces-tabs", "separators", "bom", "bom-separators"],
)
def test_empty_file(data):
    assert rejected(data)[0] == "empty_file"


def test_only_a_sep_line_is_empty():
    assert rejected("sep=;\n\n;;\n")[0] == "empty_file"


# --- not_utf8 -------------------------------------------------------------------------------


def test_not_utf8_names_the_line_of_the_first_bad_byte_and_excel_csv_utf8():
    data = f"{HEADER}\n{ROW}\n".encode() + b"R2;b@example.com;M\xe9nard;Paul;05-11-2026\n"
    code, message = rejected(data)
    assert code == "not_utf8"
    assert "line 3" in message
    assert "CSV UTF-8" in message


def test_not_utf8_counts_blank_lines():
    data = b"\n\n" + HEADER.encode() + b"\r\n\xff;a;b;c;d\r\n"
    code, message = rejected(data)
    assert code == "not_utf8"
    assert "line 4" in message


def test_a_utf8_bom_is_accepted_and_ignored():
    parsed = read(b"\xef\xbb\xbf" + f"{HEADER}\n{ROW}\n".encode())
    assert parsed.columns == HEADER.split(";")
    assert parsed.records[0].values["order_ref"] == "R1"
    assert lines_of(parsed) == [2]


def test_a_bom_before_sep_line_is_accepted():
    parsed = read(b"\xef\xbb\xbf" + f"sep=;\n{HEADER}\n{ROW}\n".encode())
    assert lines_of(parsed) == [3]


# --- wrong_separator ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sep", "word"), [(",", "comma"), ("\t", "tab"), ("|", "pipe")], ids=["comma", "tab", "pipe"]
)
def test_wrong_separator_names_the_separator(sep, word):
    text = f"{HEADER.replace(';', sep)}\n{ROW.replace(';', sep)}\n"
    code, message = rejected(text)
    assert code == "wrong_separator"
    assert word in message.lower()


def test_wrong_separator_with_quoted_header_names():
    text = '"order_ref","email","lastname","firstname","order_date"\n"R1","a@x.fr","D","J","x"\n'
    assert rejected(text)[0] == "wrong_separator"


@pytest.mark.parametrize(("sep", "word"), [(",", "comma"), ("|", "pipe")])
def test_sep_line_naming_another_separator_is_wrong_separator(sep, word):
    code, message = rejected(f"sep={sep}\n{HEADER}\n{ROW}\n")
    assert code == "wrong_separator"
    assert word in message.lower()


def test_sep_semicolon_line_is_skipped_but_counted():
    parsed = read(f"sep=;\n{HEADER}\n{ROW}\n\nR2;b@example.com;Doe;John;05-11-2026\n")
    assert parsed.columns == HEADER.split(";")
    assert lines_of(parsed) == [3, 5]


def test_sep_line_with_crlf_is_skipped():
    parsed = read(f"sep=;\r\n{HEADER}\r\n{ROW}\r\n")
    assert lines_of(parsed) == [3]


# --- duplicate_columns, missing_columns, unknown_columns ------------------------------------


def test_duplicate_columns():
    code, message = rejected(f"{HEADER};Email*\n{ROW};x\n")
    assert code == "duplicate_columns"
    assert "email" in message


def test_missing_columns_names_each_missing_column():
    code, message = rejected("order_ref;email;lastname\nR1;a@example.com;Doe\n")
    assert code == "missing_columns"
    assert "firstname" in message
    assert "order_date" in message


def test_missing_mandatory_column_of_the_template():
    code, message = rejected(f"{HEADER};id_product\n{ROW};P1\n", WEBSITE_PRODUCTS)
    assert code == "missing_columns"
    assert "name_product" in message
    code, message = rejected(f"{HEADER}\n{ROW}\n", TEMPLATES["store"])
    assert code == "missing_columns"
    assert "shop_id" in message


def test_missing_columns_suggests_the_column_a_close_name_meant():
    code, message = rejected(
        "order_ref;email;lastname;firstname;purchase_date\nR1;a@example.com;Doe;Jane;05-11-2026\n"
    )
    assert code == "missing_columns"
    assert "purchase_date: did you mean order_date?" in message


def test_unknown_columns_with_did_you_mean():
    code, message = rejected(f"{HEADER};delai\n{ROW};3\n")
    assert code == "unknown_columns"
    assert "delai" in message
    assert "did you mean delay" in message


def test_a_product_column_is_unknown_in_a_website_file():
    code, message = rejected(f"{HEADER};id_product\n{ROW};P1\n")
    assert code == "unknown_columns"
    assert "id_product" in message


# --- no_data_rows ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [f"{HEADER}", f"{HEADER}\n", f"{HEADER}\n\n   \n;;;;\n", f"{HEADER}\r\n\r\n\t;\r\n"],
    ids=["no-newline", "newline", "blank-lines", "crlf-blank-lines"],
)
def test_no_data_rows(text):
    assert rejected(text)[0] == "no_data_rows"


def test_a_row_with_a_wrong_field_count_is_a_data_row():
    parsed = read(f"{HEADER}\nR1;a@example.com\n")
    assert parsed.records == []
    assert [(e.line, e.column, e.code) for e in parsed.field_count_errors] == [
        (2, None, "wrong_field_count")
    ]
    assert parsed.total_rows == 1


# --- the order of the checks ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "code"),
    [
        # latin-1 and a comma header: not_utf8 comes first
        (b"order_ref,email,lastname,firstname,order_date\nR1,a@x.fr,M\xe9nard,J,05-11-2026\n",
         "not_utf8"),
        # a comma header naming a column twice: wrong_separator first
        (b"order_ref,order_ref,email,lastname,firstname,order_date\n1,1,a,b,c,d\n",
         "wrong_separator"),
        # a column twice and another missing: duplicate_columns first
        (b"order_ref;order_ref;email;lastname;firstname\n1;1;a;b;c\n", "duplicate_columns"),
        # a column missing and an unknown one: missing_columns first
        (b"order_ref;email;lastname;firstname;foo\n1;a;b;c;d\n", "missing_columns"),
        # an unknown column and no data row: unknown_columns first
        (b"order_ref;email;lastname;firstname;order_date;foo\n\n", "unknown_columns"),
        # a sep=, line and a latin-1 byte: not_utf8 first
        (b"sep=,\n" + HEADER.encode() + b"\n\xe9;a;b;c;d\n", "not_utf8"),
    ],
    ids=["utf8>separator", "separator>duplicate", "duplicate>missing", "missing>unknown",
         "unknown>no-rows", "utf8>sep-line"],
)  # fmt: skip
def test_first_failing_check_wins(data, code):
    assert rejected(data)[0] == code


# --- header matching ------------------------------------------------------------------------


def test_header_names_are_trimmed_starred_lower_cased_and_in_any_order():
    text = " Order_Date* ;\tEMAIL\t; firstname *;LastName ; order_ref*\n05-11-2026;a@x.fr;J;D;R1\n"
    parsed = read(text)
    assert parsed.records[0].values == {
        "order_date": "05-11-2026",
        "email": "a@x.fr",
        "firstname": "J",
        "lastname": "D",
        "order_ref": "R1",
    }


def test_only_one_trailing_star_is_dropped():
    code, message = rejected("order_ref**;email;lastname;firstname;order_date\n1;a;b;c;d\n")
    assert code == "missing_columns"
    assert "order_ref" in message


def test_optional_columns_may_be_left_out_or_present():
    parsed = read(f"{HEADER};language;delay\n{ROW};fr;3\n")
    assert parsed.records[0].values["language"] == "fr"
    assert parsed.records[0].values["delay"] == "3"


# --- a header ending with ";" ---------------------------------------------------------------


def test_header_ending_with_separator_ignores_that_column():
    text = f"{HEADER};\n{ROW};\n{ROW.replace('R1', 'R2')}\n{ROW.replace('R1', 'R3')}; \n"
    parsed = read(text)
    assert parsed.columns == HEADER.split(";")
    assert lines_of(parsed) == [2, 3, 4]
    assert parsed.field_count_errors == []
    assert all(len(r.values) == 5 for r in parsed.records)


def test_header_ending_with_separator_and_crlf():
    parsed = read(f"{HEADER} ; \r\n{ROW};\r\n{ROW}\r\n")
    assert parsed.columns == HEADER.split(";")
    assert lines_of(parsed) == [2, 3]
    assert parsed.field_count_errors == []


def test_header_ending_with_separator_a_value_in_the_extra_column_is_wrong_field_count():
    parsed = read(f"{HEADER};\n{ROW};extra\n")
    assert parsed.records == []
    assert [(e.line, e.column, e.code) for e in parsed.field_count_errors] == [
        (2, None, "wrong_field_count")
    ]


def test_without_a_trailing_separator_in_the_header_a_trailing_one_in_a_row_is_a_field_too_many():
    parsed = read(f"{HEADER}\n{ROW};\n")
    assert [(e.line, e.column, e.code) for e in parsed.field_count_errors] == [
        (2, None, "wrong_field_count")
    ]


# --- wrong_field_count ----------------------------------------------------------------------


def test_too_few_and_too_many_fields():
    parsed = read(f"{HEADER}\nR1;a@x.fr;D;J\n{ROW}\nR3;a@x.fr;D;J;05-11-2026;x\n")
    assert lines_of(parsed) == [3]
    assert [(e.line, e.column, e.code) for e in parsed.field_count_errors] == [
        (2, None, "wrong_field_count"),
        (4, None, "wrong_field_count"),
    ]
    assert parsed.total_rows == 3


# --- line numbers and CSV syntax ------------------------------------------------------------


def test_blank_lines_are_skipped_but_counted():
    text = f"\n  \n{HEADER}\n{ROW}\n\n;;;;\n \t \nR2;b@x.fr;D;J;05-11-2026\n\n"
    parsed = read(text)
    assert lines_of(parsed) == [4, 8]
    assert parsed.total_rows == 2


@pytest.mark.parametrize("eol", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_a_quoted_line_break_spans_two_lines_and_the_next_line_number_accounts_for_it(eol):
    text = eol.join(
        [HEADER, 'R1;a@x.fr;D;"Jane', 'Marie";05-11-2026', "R2;b@x.fr;D;J;05-11-2026", ""]
    )
    parsed = read(text)
    assert lines_of(parsed) == [2, 4]
    assert parsed.records[0].values["firstname"] in ("Jane\nMarie", "Jane\r\nMarie")
    assert parsed.records[1].values["order_date"] == "05-11-2026"


@pytest.mark.parametrize("eol", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_line_endings_never_reach_the_values(eol):
    parsed = read(eol.join([HEADER, ROW, ROW.replace("R1", "R2"), ""]))
    assert [r.values["order_date"] for r in parsed.records] == ["05-11-2026", "05-11-2026"]
    assert lines_of(parsed) == [2, 3]


def test_a_quoted_value_holds_separators_and_doubled_quotes():
    parsed = read(f'{HEADER}\nR1;a@x.fr;"Doe; ""Junior""";J;05-11-2026\n')
    assert parsed.records[0].values["lastname"] == 'Doe; "Junior"'


def test_a_quote_inside_an_unquoted_value_is_data():
    parsed = read(f'{HEADER}\nR1;a@x.fr;O"Brien;J"r;05-11-2026\nR2;b@x.fr;D;J;05-11-2026\n')
    assert parsed.records[0].values["lastname"] == 'O"Brien'
    assert parsed.records[0].values["firstname"] == 'J"r'
    assert lines_of(parsed) == [2, 3]


def test_values_are_trimmed_of_spaces_and_tabs():
    parsed = read(f"{HEADER}\n  R1\t; a@x.fr ;\tDoe\t;  Jane ;05-11-2026  \n")
    assert parsed.records[0].values == {
        "order_ref": "R1",
        "email": "a@x.fr",
        "lastname": "Doe",
        "firstname": "Jane",
        "order_date": "05-11-2026",
    }


def test_quoted_values_are_trimmed_too():
    """Values are trimmed before every check: quoting does not protect surrounding spaces."""
    parsed = read(f'{HEADER}\n"R1 ";" a@x.fr";"\tDoe ";"  ";05-11-2026\n')
    values = parsed.records[0].values
    assert values["order_ref"] == "R1"
    assert values["email"] == "a@x.fr"
    assert values["lastname"] == "Doe"
    assert values["firstname"] == ""


def test_inner_spaces_are_kept():
    parsed = read(f"{HEADER}\nR1;a@x.fr;Le  Gall;Jean Pierre;05-11-2026\n")
    assert parsed.records[0].values["lastname"] == "Le  Gall"


def refused(parsed: ParsedFile) -> list[tuple[int, str | None, str]]:
    return [(e.line, e.column, e.code) for e in parsed.field_count_errors]


def test_an_unclosed_quote_refuses_its_row_and_not_the_rows_below():
    """RFC 4180: a value that opens a quote never closed is malformed. Its row does not load
    (before, it loaded with the quote kept in the name); the rows below are read as usual."""
    text = f'{HEADER}\nR1;a@x.fr;"Doe;J;05-11-2026\nR2;b@x.fr;D;J;05-11-2026\n\n{ROW}\n'
    parsed = read(text)
    assert [r.values["order_ref"] for r in parsed.records] == ["R2", "R1"]
    assert lines_of(parsed) == [3, 5]
    assert refused(parsed) == [(2, None, "wrong_field_count")]
    message = parsed.field_count_errors[0].message
    assert "column lastname" in message and "never closed" in message
    assert "Doe" not in message, "a name never appears in a message"
    assert parsed.total_rows == 3


def test_an_unclosed_quote_does_not_swallow_rows_that_hold_quoted_values():
    text = (
        f"{HEADER}\n"
        'R1;a@x.fr;"Doe;J;05-11-2026\n'
        'R2;b@x.fr;"Doe";J;05-11-2026\n'
        'R3;c@x.fr;D;"J";05-11-2026\n'
    )
    parsed = read(text)
    assert lines_of(parsed) == [3, 4]
    assert [r.values["order_ref"] for r in parsed.records] == ["R2", "R3"]
    assert parsed.records[0].values["lastname"] == "Doe"
    assert refused(parsed) == [(2, None, "wrong_field_count")]


def test_an_unclosed_quote_on_the_last_line():
    parsed = read(f'{HEADER}\n{ROW}\nR2;b@x.fr;D;"J;05-11-2026')
    assert lines_of(parsed) == [2]
    assert refused(parsed) == [(3, None, "wrong_field_count")]
    assert "column firstname" in parsed.field_count_errors[0].message


def test_a_quote_inside_a_value_that_does_not_start_with_one_is_data():
    parsed = read(f'{HEADER}\nR1;a@x.fr;Do"e;J;05-11-2026\n')
    assert parsed.records[0].values["lastname"] == 'Do"e'
    assert refused(parsed) == []


def test_a_quoted_value_over_several_lines_still_loads_as_one_record():
    parsed = read(f'{HEADER}\nR1;a@x.fr;"Doe\nSmith";J;05-11-2026\n{ROW}\n')
    assert lines_of(parsed) == [2, 4]
    assert parsed.records[0].values["lastname"] == "Doe\nSmith"
    assert refused(parsed) == []


def test_the_header_line_is_the_first_non_blank_line():
    parsed = read(f"\n\r\n;;\n{HEADER}\n{ROW}\n")
    assert parsed.columns == HEADER.split(";")
    assert lines_of(parsed) == [5]


def test_equal_values_of_a_file_share_one_string_and_keep_their_text():
    """A 5 MB file's records live until it is loaded: a value repeated from row to row (a
    name, a date, a quoted value too) is held once (issue 9, peak memory), and every record
    still reads its own text."""
    rows = [
        'R1;a@example.com;"Doe";Jane;05-11-2026',
        "R2;b@example.com;Doe;Jane;05-11-2026",
        "R3;c@example.com;Martin;Jane;06-11-2026",
    ]
    parsed = read("\n".join([HEADER, *rows]) + "\n")
    first, second, third = (r.values for r in parsed.records)
    assert [r.values["lastname"] for r in parsed.records] == ["Doe", "Doe", "Martin"]
    assert first["lastname"] is second["lastname"]
    assert first["order_date"] is second["order_date"]
    assert first["firstname"] is second["firstname"] is third["firstname"]
    assert third["order_date"] == "06-11-2026" and third["order_ref"] == "R3"
