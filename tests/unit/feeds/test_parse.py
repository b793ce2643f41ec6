from __future__ import annotations

import csv
import gzip
import io
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplane.feeds.parse import (
    RAW_LIMIT,
    Feed,
    FeedFormat,
    FeedUnreadable,
    Row,
    detect_format,
    open_feed,
)
from marketplane.kernel.errors import BadRequest, FieldError

BOM = b"\xef\xbb\xbf"
CSV_FEED = b"sku,price\nA-1,9.99\nA-2,12.50\n"
JSONL_FEED = b'{"sku": "A-1", "price": 9.99}\n{"sku": "A-2", "price": 12.5}\n'
JSON_FEED = b'[{"sku": "A-1", "price": 9.99},\n {"sku": "A-2", "price": 12.5}]\n'


class Trickle(io.BytesIO):
    """A stream that gives at most `piece` bytes a read, as sockets and pipes may."""

    def __init__(self, data: bytes, piece: int) -> None:
        super().__init__(data)
        self.piece = piece

    def read(self, size: int | None = -1) -> bytes:
        return super().read(self.piece if size is None or size < 0 else min(size, self.piece))


def opened(data: bytes, *, compressed: bool = False, **options: Any) -> Feed:
    return open_feed(io.BytesIO(gzip.compress(data) if compressed else data), **options)


def read_all(data: bytes, **options: Any) -> list[Row]:
    return list(opened(data, **options).rows())


def codes(rows: list[Row]) -> list[str | None]:
    return [row.error.code if row.error else None for row in rows]


def read_until_unreadable(feed: Feed) -> tuple[list[Row], FeedUnreadable]:
    rows: list[Row] = []
    with pytest.raises(FeedUnreadable) as raised:
        rows.extend(feed.rows())  # keeps the rows before the exception
    return rows, raised.value


# Formats, compressed or not


@pytest.mark.parametrize("compressed", [False, True])
def test_csv_rows_map_the_header_to_their_cells(compressed: bool) -> None:
    # given a CSV feed
    # when it is opened and read
    feed = opened(CSV_FEED, compressed=compressed)
    rows = list(feed.rows())
    # then
    assert (feed.format, feed.compressed, feed.delimiter) == (FeedFormat.CSV, compressed, ",")
    assert feed.columns == ["sku", "price"]
    assert rows == [
        Row(2, {"sku": "A-1", "price": "9.99"}, None, "A-1,9.99"),
        Row(3, {"sku": "A-2", "price": "12.50"}, None, "A-2,12.50"),
    ]


@pytest.mark.parametrize("compressed", [False, True])
def test_json_lines_rows_are_the_objects_on_each_line(compressed: bool) -> None:
    # given a JSON Lines feed
    # when it is opened and read
    feed = opened(JSONL_FEED, compressed=compressed)
    rows = list(feed.rows())
    # then
    assert (feed.format, feed.compressed, feed.delimiter, feed.columns) == (
        FeedFormat.JSONL,
        compressed,
        None,
        None,
    )
    assert rows == [
        Row(1, {"sku": "A-1", "price": 9.99}, None, '{"sku": "A-1", "price": 9.99}'),
        Row(2, {"sku": "A-2", "price": 12.5}, None, '{"sku": "A-2", "price": 12.5}'),
    ]


@pytest.mark.parametrize("compressed", [False, True])
def test_json_array_rows_are_its_items(compressed: bool) -> None:
    # given a JSON array feed
    # when it is opened and read
    feed = opened(JSON_FEED, compressed=compressed)
    rows = list(feed.rows())
    # then numbers are floats, not Decimals, and raw is the item re-serialised
    assert (feed.format, feed.compressed, feed.delimiter, feed.columns) == (
        FeedFormat.JSON,
        compressed,
        None,
        None,
    )
    assert rows == [
        Row(1, {"sku": "A-1", "price": 9.99}, None, '{"sku":"A-1","price":9.99}'),
        Row(2, {"sku": "A-2", "price": 12.5}, None, '{"sku":"A-2","price":12.5}'),
    ]


@pytest.mark.parametrize("data", [CSV_FEED, JSONL_FEED, JSON_FEED])
def test_gzip_is_known_by_its_magic_bytes_not_its_name(data: bytes) -> None:
    # given a compressed feed named as if it were not, and a plain one named as if it were
    # when both are opened
    named_plain = opened(data, compressed=True, filename="offers.txt")
    named_gzip = opened(data, filename="offers.gz")
    # then
    assert named_plain.compressed
    assert not named_gzip.compressed
    assert list(named_plain.rows()) == list(named_gzip.rows())


@pytest.mark.parametrize("data", [CSV_FEED, JSONL_FEED, JSON_FEED])
def test_a_utf8_bom_is_dropped(data: bytes) -> None:
    # given a feed that starts with a byte order mark
    # when it is read
    with_bom = opened(BOM + data)
    # then it reads as without one
    without_bom = opened(data)
    assert with_bom.format == without_bom.format
    assert with_bom.columns == without_bom.columns
    assert list(with_bom.rows()) == list(without_bom.rows())


@pytest.mark.parametrize("format", list(FeedFormat))
@pytest.mark.parametrize("data", [b"", b"  \n\n", BOM])
def test_an_empty_file_has_no_rows(format: FeedFormat, data: bytes) -> None:
    # given an empty file, compressed or not
    for compressed in (False, True):
        # when it is read
        rows = read_all(data, compressed=compressed, format=format)
        # then
        assert rows == []


def test_a_csv_with_only_a_header_has_columns_and_no_rows() -> None:
    # given
    feed = opened(b" sku , price \r\n")
    # when
    rows = list(feed.rows())
    # then header names are stripped
    assert feed.columns == ["sku", "price"]
    assert rows == []


def test_blank_lines_are_no_rows_but_count_as_lines() -> None:
    # given blank lines, one only spaces, in CSV and JSON Lines
    csv_rows = read_all(b"sku,price\n\nA-1,1\n   \n\r\nA-2,2\n")
    jsonl_rows = read_all(b'\n{"sku": "A-1"}\n  \r\n{"sku": "A-2"}')
    # then
    assert [row.line for row in csv_rows] == [3, 6]
    assert [row.line for row in jsonl_rows] == [2, 4]


def test_bytes_read_follows_the_source() -> None:
    # given a compressed feed larger than what opening reads ahead
    data = b"sku,n\n" + b"".join(b"A-%d,%d\n" % (i, i * 7919 % 10007) for i in range(40_000))
    source = gzip.compress(data)
    feed = open_feed(io.BytesIO(source))
    # when it is read
    seen = [feed.bytes_read]
    for row in feed.rows():
        if row.line % 10_000 == 0:
            seen.append(feed.bytes_read)
    # then the count grows up to the compressed size
    assert seen == sorted(seen)
    assert 0 < seen[0] < seen[-1] <= len(source) == feed.bytes_read


# Format detection


@pytest.mark.parametrize(
    ("head", "filename", "format"),
    [
        (b"[", "offers.csv", FeedFormat.CSV),
        (b"[", "offers.tsv", FeedFormat.CSV),
        (b"", "offers.jsonl", FeedFormat.JSONL),
        (b"", "offers.ndjson", FeedFormat.JSONL),
        (b"", "offers.json", FeedFormat.JSON),
        (b"sku", "exports/OFFERS.JSON.GZ", FeedFormat.JSON),
        (b"[", "offers.csv.gz", FeedFormat.CSV),
        (b'\n  [{"sku": "A-1"}]', None, FeedFormat.JSON),
        (BOM + b'{"sku": "A-1"}\n', None, FeedFormat.JSONL),
        (b'{"sku": "A-1"}\n', "offers.txt", FeedFormat.JSONL),
        (b"[", "offers.gz", FeedFormat.JSON),
        (b"sku,price\n", None, FeedFormat.CSV),
        (b"", None, FeedFormat.CSV),
    ],
)
def test_detect_format(head: bytes, filename: str | None, format: FeedFormat) -> None:
    assert detect_format(head, filename) is format


def test_a_given_format_overrides_detection() -> None:
    # given JSON Lines named .json
    data = b'{"sku": "A-1"}\n{"sku": "A-2"}\n'
    # when read as JSON Lines
    rows = read_all(data, filename="offers.json", format=FeedFormat.JSONL)
    # then
    assert [row.values for row in rows] == [{"sku": "A-1"}, {"sku": "A-2"}]


def test_a_json_feed_that_is_not_an_array_is_unreadable() -> None:
    # given an object where an array was expected
    # when / then
    with pytest.raises(FeedUnreadable, match="array"):
        opened(b'{"offers": [{"sku": "A-1"}]}', filename="offers.json")


# CSV delimiters


@pytest.mark.parametrize("delimiter", list(",;\t|"))
def test_the_delimiter_is_sniffed(delimiter: str) -> None:
    # given rows whose cells hold the other candidates too
    records = [
        ["sku", "title", "price"],
        ["A-1", "Mug; blue, large", "9.99"],
        ["A-2", "Plate | white\tround", "4.50"],
        ["A-3", "Cup", "2.00"],
    ]
    text = io.StringIO()
    csv.writer(text, delimiter=delimiter).writerows(records)
    # when
    feed = opened(text.getvalue().encode())
    rows = list(feed.rows())
    # then
    assert feed.delimiter == delimiter
    assert [row.values for row in rows] == [
        dict(zip(records[0], r, strict=True)) for r in records[1:]
    ]


def test_a_given_delimiter_is_used_as_given() -> None:
    # given semicolon-separated text
    data = b"sku;price\nA-1;9.99\n"
    # when it is read as comma-separated
    feed = opened(data, delimiter=",")
    rows = list(feed.rows())
    # then
    assert feed.delimiter == ","
    assert feed.columns == ["sku;price"]
    assert rows[0].values == {"sku;price": "A-1;9.99"}


def test_a_tsv_file_is_tab_separated() -> None:
    # given a .tsv file whose first lines hold commas but no tab
    data = b"title\nMug, blue\nPlate, white\n"
    # when
    feed = opened(data, filename="offers.tsv")
    # then
    assert feed.delimiter == "\t"
    assert [row.values for row in feed.rows()] == [
        {"title": "Mug, blue"},
        {"title": "Plate, white"},
    ]


def test_sniffing_is_quick_on_text_that_slows_csv_sniffer() -> None:
    # given a sample on which csv.Sniffer's regular expressions take seconds
    data = b"sku,title\n" + b'x,"' * 20_000 + b"\n"
    # when it is opened
    feed = opened(data)
    # then the comma wins and a row comes back
    assert feed.delimiter == ","
    assert len(list(feed.rows())) == 1


# CSV records


def test_quoted_fields_may_hold_line_breaks() -> None:
    # given records whose quoted cells run over several lines
    data = (
        b'sku,description,price\r\nA-1,"Line one\r\nline two",9.99\r\n'
        b'A-2,"x\n\ny",1\r\nA-3,plain,2\r\n'
    )
    # when
    rows = read_all(data)
    # then each row has the line its record starts on
    assert rows == [
        Row(
            2,
            {"sku": "A-1", "description": "Line one\r\nline two", "price": "9.99"},
            None,
            'A-1,"Line one\r\nline two",9.99',
        ),
        Row(4, {"sku": "A-2", "description": "x\n\ny", "price": "1"}, None, 'A-2,"x\n\ny",1'),
        Row(7, {"sku": "A-3", "description": "plain", "price": "2"}, None, "A-3,plain,2"),
    ]


def test_rows_with_more_or_fewer_cells_than_the_header_are_ragged() -> None:
    # given
    data = b"sku,title,price\nA-1,Mug\nA-2,Cup,2.00\nA-3,Pan,3.00,extra\n"
    # when
    rows = read_all(data)
    # then the message says how many cells
    assert codes(rows) == ["ragged_row", None, "ragged_row"]
    assert rows[0] == Row(
        2, None, FieldError("row", "ragged_row", "the row has 2 cells, the header 3"), "A-1,Mug"
    )
    assert rows[2].error is not None
    assert "4 cells" in rows[2].error.message
    assert rows[2].raw == "A-3,Pan,3.00,extra"


def test_formula_looking_cells_are_data_like_any_other() -> None:
    # given cells a spreadsheet would run
    data = b"sku,title\nA-1,=cmd|' /C calc'!A0\nA-2,@SUM(1+1)\n"
    # when
    rows = read_all(data)
    # then they come through unchanged: escaping is for whoever writes them out
    assert [row.values for row in rows] == [
        {"sku": "A-1", "title": "=cmd|' /C calc'!A0"},
        {"sku": "A-2", "title": "@SUM(1+1)"},
    ]
    assert rows[0].raw == "A-1,=cmd|' /C calc'!A0"


def test_raw_is_cut_to_the_limit_and_values_are_not() -> None:
    # given a long cell
    data = b"sku,title\nA-1," + b"t" * 5_000 + b"\n"
    # when
    [row] = read_all(data)
    # then
    assert row.raw == ("A-1," + "t" * 5_000)[:RAW_LIMIT]
    assert row.values == {"sku": "A-1", "title": "t" * 5_000}


def test_duplicate_header_names_make_the_feed_unreadable() -> None:
    # given a header naming a column twice, once with spaces around
    # when / then
    with pytest.raises(FeedUnreadable, match=r"'sku' twice \(columns 1 and 3\)") as raised:
        opened(b"sku,title, sku\nA-1,Mug,A-1\n")
    assert raised.value.line == 1


def test_an_empty_header_name_makes_the_feed_unreadable() -> None:
    # when / then
    with pytest.raises(FeedUnreadable, match="column 2 of the header has no name"):
        opened(b"sku, ,price\nA-1,Mug,1\n")


def test_a_header_that_is_not_utf8_makes_the_feed_unreadable() -> None:
    # when / then
    with pytest.raises(FeedUnreadable, match=r"header \(line 1\) cannot be read: not valid UTF-8"):
        opened(b"sku,d\xe9signation\nA-1,Mug\n")


# Row-level problems


@pytest.mark.parametrize(
    ("data", "raw"),
    [
        (b"sku,title\nA-1,caf\xe9\nA-2,caf\xc3\xa9\n", "A-1,caf\\xe9"),
        (b'{"sku": "A-1", "title": "caf\xe9"}\n{"sku": "A-2", "title": "caf\xc3\xa9"}\n', None),
    ],
)
def test_a_row_that_is_not_utf8_is_flagged_and_the_others_are_read(
    data: bytes, raw: str | None
) -> None:
    # given a row in Latin-1 among UTF-8 rows
    # when
    rows = read_all(data)
    # then
    assert codes(rows) == ["invalid_encoding", None]
    assert rows[0].values is None
    assert rows[0].error is not None
    assert "byte 0xe9" in rows[0].error.message
    assert raw is None or rows[0].raw == raw
    assert rows[1].values is not None
    assert rows[1].values["title"] == "café"


def test_json_lines_that_are_not_json_or_not_objects_are_flagged() -> None:
    # given
    data = b'{"sku": "A-1"}\n{"sku": \n[1, 2]\n"A-3"\n7\nnull\ntrue\n{"sku": "A-8"}\n'
    # when
    rows = read_all(data)
    # then
    assert codes(rows) == [None, "invalid_json"] + ["not_an_object"] * 5 + [None]
    assert [row.line for row in rows] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert rows[1].raw == '{"sku": '
    messages = [row.error.message for row in rows if row.error]
    assert messages[1:] == [
        f"expected a JSON object, found {kind}"
        for kind in ("an array", "a string", "a number", "null", "true or false")
    ]


def test_json_array_items_that_are_not_objects_are_flagged() -> None:
    # given
    data = b'[{"sku": "A-1"}, [1], "A-3", 4.5, null, false, {"sku": "A-7"}]'
    # when
    rows = read_all(data)
    # then
    assert codes(rows) == [None] + ["not_an_object"] * 5 + [None]
    assert [row.line for row in rows] == [1, 2, 3, 4, 5, 6, 7]
    assert [row.raw for row in rows[1:3]] == ["[1]", '"A-3"']


def test_a_line_over_the_limit_is_too_large_and_the_next_line_is_read() -> None:
    # given lines over a small limit in CSV and JSON Lines
    csv_rows = read_all(b"sku,title\nA-1," + b"t" * 100 + b"\nA-2,Mug\n", max_row_bytes=50)
    jsonl_rows = read_all(b'{"sku": "' + b"A" * 100 + b'"}\n{"sku": "A-2"}\n', max_row_bytes=50)
    # then
    assert codes(csv_rows) == ["row_too_large", None]
    assert csv_rows[0].line == 2
    assert csv_rows[0].raw == "A-1," + "t" * 100
    assert csv_rows[1] == Row(3, {"sku": "A-2", "title": "Mug"}, None, "A-2,Mug")
    assert codes(jsonl_rows) == ["row_too_large", None]
    assert jsonl_rows[1].line == 2


def test_a_record_whose_quoted_cell_runs_past_the_limit_is_too_large() -> None:
    # given a quoted cell over two lines, together longer than the limit
    data = b'sku,title\nA-1,"' + b"t" * 30 + b"\n" + b"t" * 30 + b'"\nA-2,Mug\n'
    # when
    rows = read_all(data, max_row_bytes=50)
    # then reading goes on after it
    assert codes(rows) == ["row_too_large", None]
    assert rows[0].line == 2
    assert rows[1] == Row(4, {"sku": "A-2", "title": "Mug"}, None, "A-2,Mug")


@pytest.mark.parametrize("compressed", [False, True])
def test_a_50_mb_line_is_skipped_in_bounded_memory(tmp_path: Path, compressed: bool) -> None:
    # given a CSV file whose first row is a single 50 MB line, written in chunks
    path = tmp_path / "offers.csv"
    chunk = b"x" * 1024 * 1024
    with gzip.open(path, "wb") if compressed else path.open("wb") as file:
        file.write(b"sku,title\nA-1,")
        for _ in range(50):
            file.write(chunk)
        file.write(b"\nA-2,Mug\n")
    del chunk
    # when it is read while tracing memory
    tracemalloc.start()
    try:
        with path.open("rb") as source:
            rows = list(open_feed(source).rows())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # then
    assert codes(rows) == ["row_too_large", None]
    assert rows[0].line == 2
    assert rows[0].raw == ("A-1," + "x" * RAW_LIMIT)[:RAW_LIMIT]
    assert rows[1] == Row(3, {"sku": "A-2", "title": "Mug"}, None, "A-2,Mug")
    assert peak < 8 * 1024 * 1024


@pytest.mark.parametrize("piece", [1, 3, 7, 4096])
@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"])
def test_lines_end_where_they_do_whatever_the_size_of_reads(piece: int, ending: bytes) -> None:
    # given lines, some over the limit, past a first row that fills what opening reads ahead,
    # from a stream that gives a few bytes a read
    lines = [
        b"sku,title",
        b"A-0," + b"f" * 70_000,
        b"A-1,Mug",
        b"A-2," + b"x" * 50,
        b"A-3,Cup",
        b"",
        b"A-4," + b"y" * 26,  # exactly at the limit
        b"A-5,Pan",
    ]
    source = Trickle(ending.join(lines) + ending, piece)
    # when
    rows = list(open_feed(source, max_row_bytes=30).rows())
    # then
    assert [(row.line, row.values["sku"] if row.values else None) for row in rows] == [
        (2, None),
        (3, "A-1"),
        (4, None),
        (5, "A-3"),
        (7, "A-4"),
        (8, "A-5"),
    ]
    assert codes(rows) == ["row_too_large", None, "row_too_large", None, None, None]


cells = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"))


@settings(max_examples=60, deadline=None)
@given(
    records=st.lists(st.tuples(cells, cells, cells), max_size=8),
    ending=st.sampled_from(["\n", "\r\n", "\r"]),
    piece=st.integers(1, 9),
)
def test_csv_reads_back_what_csv_writer_wrote(
    records: list[tuple[str, str, str]], ending: str, piece: int
) -> None:
    # given records written by csv.writer after a first row filling the read-ahead, read from
    # a stream that gives a few bytes a read
    records = [("filler", "f" * 70_000, ""), *records]
    texts = []
    for record in records:
        out = io.StringIO()
        # Python 3.11's writer leaves unquoted a "\r" or "\n" not in its line terminator
        writer = csv.writer(out, lineterminator=ending)
        if ending != "\r\n":
            writer = csv.writer(out, lineterminator=ending, quoting=csv.QUOTE_ALL)
        writer.writerow(record)
        texts.append(out.getvalue().encode())
    data = b"a,b,c" + ending.encode() + b"".join(texts)
    # when
    rows = list(open_feed(Trickle(data, piece), delimiter=",").rows())
    # then every record comes back whole, on the line where it starts
    starts = [2]
    for text in texts:
        starts.append(starts[-1] + len(text.splitlines()))
    assert [(row.line, row.values) for row in rows] == [
        (start, dict(zip("abc", record, strict=True)))
        for start, record in zip(starts, records, strict=False)
    ]


# Feeds that break


FEEDS_THAT_BREAK = {
    FeedFormat.CSV: (b"sku,n\n", b"A-%d,%d\n"),
    FeedFormat.JSONL: (b"", b'{"sku": "A-%d", "n": %d}\n'),
    FeedFormat.JSON: (b"[", b'{"sku": "A-%d", "n": %d},\n'),
}


@pytest.mark.parametrize("format", list(FeedFormat))
def test_a_cut_short_gzip_stream_fails_after_the_rows_before_it(format: FeedFormat) -> None:
    # given a compressed feed, cut in the middle
    start, row = FEEDS_THAT_BREAK[format]
    data = start + b"".join(row % (i, i * 7919 % 10007) for i in range(50_000))
    compressed = gzip.compress(data)
    feed = open_feed(io.BytesIO(compressed[: len(compressed) // 2]))
    # when it is read
    rows, error = read_until_unreadable(feed)
    # then the rows before the cut came whole, and the error says where reading stopped
    assert len(rows) > 1_000
    assert [row.values["sku"] if row.values else None for row in rows] == [
        f"A-{i}" for i in range(len(rows))
    ]
    assert error.line == rows[-1].line
    assert error.extra == {"line": rows[-1].line}
    assert "gzip" in error.detail


def test_a_gzip_stream_cut_before_any_row_fails_to_open() -> None:
    # given
    cut = gzip.compress(CSV_FEED)[:-12]
    # when / then
    with pytest.raises(FeedUnreadable, match="cut short") as raised:
        open_feed(io.BytesIO(cut))
    assert raised.value.line == 0


@pytest.mark.parametrize(
    ("data", "line"),
    [
        (b'[{"sku": "A-1"}, {"sku": "A-2"}, {"sku": ', 2),
        (b'[{"sku": "A-1"} {"sku": "A-2"}]', 1),
        (b'[{"sku": "A-1"}, {"sku": "A-2"}', 2),
        (b'[{"sku" "A-1"}]', 0),
    ],
)
def test_a_json_array_that_breaks_fails_after_the_items_before_it(data: bytes, line: int) -> None:
    # given a JSON array broken part way
    feed = opened(data)
    # when
    rows, error = read_until_unreadable(feed)
    # then
    assert [row.values for row in rows] == [{"sku": f"A-{i}"} for i in range(1, line + 1)]
    assert error.line == line
    assert f"breaks after item {line}" in error.detail


def test_a_json_array_nested_too_deep_fails_before_it_is_parsed() -> None:
    # given an item nested many times deeper than any offer, which ijson would hold in memory
    # growing with the square of the depth
    data = b'[{"sku": "A-1"}, {"sku": ' + b"[" * 100_000 + b"]" * 100_000 + b"}]"
    # when
    _, error = read_until_unreadable(opened(data))
    # then
    assert "nested deeper than 512 levels" in error.detail


def test_brackets_in_json_strings_are_not_nesting() -> None:
    # given strings full of brackets, quotes escaped and backslashes
    tricky = b'"' + b"[{" * 400 + b'\\"' + b"[" * 400 + b'\\\\"'
    data = b'[{"a": ' + tricky + b', "b": "]]]"}, {"sku": "A-2"}]'
    # when
    rows = read_all(data)
    # then
    assert codes(rows) == [None, None]
    assert rows[1].values == {"sku": "A-2"}


def test_a_json_array_item_over_the_limit_fails() -> None:
    # given an item far longer than the limit
    data = b'[{"sku": "A-1"}, {"sku": "' + b"A" * 300_000 + b'"}]'
    # when
    rows, error = read_until_unreadable(opened(data, max_row_bytes=1_000))
    # then
    assert [row.values for row in rows] == [{"sku": "A-1"}]
    assert error.line == 1
    assert "longer than 1000 bytes" in error.detail


def test_feed_unreadable_is_a_bad_request_with_its_own_code() -> None:
    # when
    error = FeedUnreadable("the gzip stream is cut short", line=12)
    # then
    assert isinstance(error, BadRequest)
    assert (error.code, error.status, error.line, error.extra) == (
        "feed_unreadable",
        400,
        12,
        {"line": 12},
    )


@pytest.mark.parametrize("options", [{"max_row_bytes": 0}, {"delimiter": ";;"}])
def test_options_out_of_range_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"max_row_bytes|delimiter"):
        opened(CSV_FEED, **options)
