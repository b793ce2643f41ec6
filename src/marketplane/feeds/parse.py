"""Reading a supplier's offer feed file as a stream of rows, at constant memory.

Formats: CSV (with a header row), JSON Lines and JSON arrays, each possibly gzip-compressed
(known by its magic bytes, not its name). A problem confined to one row comes back as a `Row`
with an error, and the rows after it are still read; a problem that stops the reading raises
`FeedUnreadable` once the rows before it have been yielded.

Memory stays bounded by `max_row_bytes` plus a few read chunks: a line longer than that is
skipped in chunks, never held whole, and a JSON array item longer than that, or nested deeper
than 512 levels, makes the feed unreadable. Lines end at `\\n`, `\\r\\n` or a lone `\\r`.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
import itertools
import json
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, BinaryIO

import ijson
import orjson

from marketplane.kernel.errors import BadRequest, FieldError

RAW_LIMIT = 2_000

_CHUNK = 64 * 1024
_HEAD = 64 * 1024  # what format detection and delimiter sniffing look at
_BOM = b"\xef\xbb\xbf"
_GZIP_MAGIC = b"\x1f\x8b"
_DELIMITERS = ",;\t|"
_MAX_DEPTH = 512  # of a JSON array's nesting; no offer needs more
_NOT_STRUCTURE = bytes(set(range(256)) - set(b'"[]{}'))
_NESTING_STEP = [1 if byte in b"[{" else -1 if byte in b"]}" else 0 for byte in range(256)]


class FeedFormat(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"
    JSON = "json"


_EXTENSIONS = {
    ".csv": FeedFormat.CSV,
    ".tsv": FeedFormat.CSV,
    ".jsonl": FeedFormat.JSONL,
    ".ndjson": FeedFormat.JSONL,
    ".json": FeedFormat.JSON,
}


@dataclass(slots=True)
class Row:
    """One row. `line`: for CSV the physical line where the record starts (the header is
    line 1), for JSON Lines the line, for a JSON array the item number, from 1.
    `values` is None exactly when `error` says why the row could not be read.
    `raw` is the row's text, cut to RAW_LIMIT characters, for error reports (for a JSON array
    item, its compact re-serialisation). Not frozen: one is made for each row, and a frozen
    one took 0.77 µs to make, this 0.22."""

    line: int
    values: dict[str, Any] | None
    error: FieldError | None
    raw: str | None


@dataclass
class FeedUnreadable(BadRequest):
    """The file cannot be read at all, or from some point on. `line` is the last line (JSON
    array: item) read whole before the problem, 0 if none; it is also in `extra`."""

    code: str = "feed_unreadable"
    line: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.extra = {**self.extra, "line": self.line}


class _Broken(Exception):
    """The decompressed stream cannot be read further."""


class _RecordTooLarge(Exception):
    """A CSV record spanning several lines grew past the row limit."""


@dataclass
class Feed:
    """An opened feed. Its rows are read once, in order, as they are asked for."""

    format: FeedFormat
    compressed: bool
    delimiter: str | None
    columns: list[str] | None
    _rows: Iterator[Row] = field(repr=False, compare=False)
    _source: _Counted = field(repr=False, compare=False)
    _content: _Counted = field(repr=False, compare=False)

    def rows(self) -> Iterator[Row]:
        """The rows; a second call continues where the first stopped."""
        return self._rows

    @property
    def bytes_read(self) -> int:
        """Bytes taken from the (possibly compressed) source so far, for progress bars."""
        return self._source.taken

    @property
    def content_read(self) -> int:
        """Bytes of content (decompressed) read so far, ahead of the rows given by a buffer."""
        return self._content.taken


def detect_format(head: bytes, filename: str | None) -> FeedFormat:
    """By the file name's extension (`.gz` aside), else by the first bytes of the content."""
    if filename:
        name = filename.lower().removesuffix(".gz")
        for extension, format in _EXTENSIONS.items():
            if name.endswith(extension):
                return format
    start = head.removeprefix(_BOM).lstrip()[:1]
    if start == b"[":
        return FeedFormat.JSON
    if start == b"{":
        return FeedFormat.JSONL
    return FeedFormat.CSV


def open_feed(
    source: BinaryIO,
    *,
    format: FeedFormat | None = None,
    filename: str | None = None,
    delimiter: str | None = None,
    max_row_bytes: int = 1_048_576,
) -> Feed:
    """Open a feed: read its head, settle format and CSV header; rows come from `rows()`."""
    if max_row_bytes < 1:
        raise ValueError("max_row_bytes must be positive")
    if delimiter is not None and len(delimiter) != 1:
        raise ValueError("a delimiter is one character")
    counted = _Counted(source.read)
    raw_head = _read_head(counted.read)
    compressed = raw_head.startswith(_GZIP_MAGIC)
    content = counted
    head = raw_head
    if compressed:
        gunzip = _gunzip(gzip.GzipFile(fileobj=_Chained(raw_head, counted.read), mode="rb"))
        content = _Counted(gunzip)
    read = content.read
    if compressed:
        try:
            head = _read_head(read)
        except _Broken as exc:
            raise FeedUnreadable(str(exc)) from exc
    head = head.removeprefix(_BOM)
    format = format or detect_format(head, filename)
    if format is FeedFormat.JSON:
        start = head.lstrip()[:1]
        if start not in (b"", b"["):
            raise FeedUnreadable(f"a JSON feed is an array of objects, not one starting {start!r}")
        return Feed(
            format, compressed, None, None, _json_rows(head, read, max_row_bytes), counted, content
        )
    lines = _Lines(head, read, max_row_bytes, keepends=format is FeedFormat.CSV)
    if format is FeedFormat.JSONL:
        return Feed(
            format, compressed, None, None, _jsonl_rows(lines, max_row_bytes), counted, content
        )
    if delimiter is None:
        tsv = (filename or "").lower().removesuffix(".gz").endswith(".tsv")
        delimiter = "\t" if tsv else _sniff(head)
    columns: list[str] = []
    rows = _csv_rows(lines, delimiter, max_row_bytes, columns)
    first = next(rows, None)  # reads the header into columns
    if first is not None and first is not _HEADER_READ:
        assert first.error is not None  # before the header, only errors are yielded
        message = f"the header (line {first.line}) cannot be read: {first.error.message}"
        raise FeedUnreadable(message, line=first.line)
    return Feed(format, compressed, delimiter, columns, rows, counted, content)


# Reading bytes


class _Counted:
    """A source's `read`, counting the bytes taken from it."""

    def __init__(self, read: Callable[[int], bytes]) -> None:
        self._read = read
        self.taken = 0

    def read(self, size: int, /) -> bytes:
        data = self._read(size)
        self.taken += len(data)
        return data


class _Chained:
    """A readable stream giving `first`, then what `read` gives."""

    def __init__(self, first: bytes, read: Callable[[int], bytes]) -> None:
        self._first = first
        self._read = read

    def read(self, size: int, /) -> bytes:
        if not self._first:
            return self._read(size)
        data, self._first = self._first[:size], self._first[size:]
        return data

    def seek(self, offset: int, /) -> int:  # gzip asks for it, and needs it only to go back
        raise io.UnsupportedOperation("a feed is read once, forwards")


def _read_head(read: Callable[[int], bytes]) -> bytes:
    parts: list[bytes] = []
    size = 0
    while size < _HEAD and (data := read(_HEAD - size)):
        parts.append(data)
        size += len(data)
    return b"".join(parts)


def _gunzip(stream: gzip.GzipFile) -> Callable[[int], bytes]:
    def read(size: int) -> bytes:
        try:
            # read1: a damaged stream fails on a call of its own, losing no data before it
            return stream.read1(size)
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise _Broken(f"the gzip stream is damaged or cut short ({exc})") from exc

    return read


class _Lines:
    """The physical lines of a byte stream: bytes, or None for a line over `limit` bytes, which
    is skipped in chunks; `oversized` is then the text it starts with."""

    def __init__(
        self, head: bytes, read: Callable[[int], bytes], limit: int, *, keepends: bool
    ) -> None:
        self.oversized = ""
        self._limit = limit
        self._keepends = keepends
        self._lines = itertools.chain.from_iterable(self._batches(head, read))

    def __iter__(self) -> Iterator[bytes | None]:
        return self._lines

    def _batches(
        self, data: bytes, read: Callable[[int], bytes]
    ) -> Iterator[Iterable[bytes | None]]:
        limit = self._limit
        parts: list[bytes] = []  # a line begun but not ended yet
        pending = 0
        while True:
            if not data:
                data = read(_CHUNK)
                if not data:
                    if parts:
                        yield from self._split(b"".join(parts))
                    return
            if parts and parts[-1].endswith(b"\r"):  # held back below: it did end a line
                if data.startswith(b"\n"):
                    parts.append(b"\n")
                    data = data[1:]
                yield from self._split(b"".join(parts))
                parts, pending = [], 0
                continue
            # a final "\r" may be the first half of "\r\n": hold it back with its line
            cut = max(data.rfind(b"\n"), data.rfind(b"\r", 0, len(data) - 1)) + 1
            if not cut:
                parts.append(data)
                pending += len(data)
                data = b""
                if pending > limit + 1:  # + a "\r" held back
                    self.oversized = _start(parts)
                    data = _skip_line(read, ended=parts[-1].endswith(b"\r"))
                    parts, pending = [], 0
                    yield (None,)
                continue
            if parts:
                parts.append(data[:cut])
                block = b"".join(parts)
            else:
                block = data[:cut]
            parts = [data[cut:]] if cut < len(data) else []
            pending = len(data) - cut
            data = b""
            if len(block) <= limit:
                yield block.splitlines(self._keepends)
            else:
                yield from self._split(block)

    def _split(self, block: bytes) -> Iterator[Iterable[bytes | None]]:
        lines = block.splitlines(self._keepends)
        if len(block) <= self._limit:
            yield lines
            return
        for line in lines:
            if len(line.rstrip(b"\r\n")) <= self._limit:
                yield (line,)
            else:
                self.oversized = _text(line[: RAW_LIMIT * 4])
                yield (None,)


def _skip_line(read: Callable[[int], bytes], *, ended: bool) -> bytes:
    """Read past the end of a line too long to keep, chunk by chunk; return what follows it.
    `ended`: the "\\r" that ends it has been read already."""
    while not ended:
        data = read(_CHUNK)
        if not data:
            return b""
        cut = min((i for i in (data.find(b"\n"), data.find(b"\r")) if i >= 0), default=-1)
        if cut < 0:
            continue
        rest = data[cut + 1 :]
        if data[cut : cut + 1] == b"\n":
            return rest
        if rest:
            return rest.removeprefix(b"\n")
        ended = True
    return read(_CHUNK).removeprefix(b"\n")


def _start(parts: list[bytes]) -> str:
    """The text a line begins with, from its first parts."""
    wanted = RAW_LIMIT * 4  # bytes enough for RAW_LIMIT characters
    taken: list[bytes] = []
    for part in parts:
        taken.append(part[:wanted])
        wanted -= len(taken[-1])
        if wanted <= 0:
            break
    return _text(b"".join(taken))


def _text(data: bytes) -> str:
    return data.decode(errors="backslashreplace").rstrip("\r\n")[:RAW_LIMIT]


# Row errors


def _too_large(limit: int) -> FieldError:
    return FieldError("row", "row_too_large", f"the row is longer than {limit} bytes")


def _bad_encoding(exc: UnicodeDecodeError) -> FieldError:
    byte = exc.object[exc.start]
    message = f"not valid UTF-8: byte 0x{byte:02x} at position {exc.start + 1} of the line"
    return FieldError("row", "invalid_encoding", message)


def _not_an_object(value: object) -> FieldError:
    kinds = {list: "an array", str: "a string", int: "a number", float: "a number"}
    kind = "null" if value is None else kinds.get(type(value), "true or false")
    return FieldError("row", "not_an_object", f"expected a JSON object, found {kind}")


# CSV

_HEADER_READ = Row(0, None, None, None)


def _sniff(head: bytes) -> str:
    """The candidate that splits the sample's records into the same number (>1) of cells most
    often. Not csv.Sniffer: its regular expressions take seconds on some 64 KB samples."""
    sample = head[: max(head.rfind(b"\n"), head.rfind(b"\r")) + 1] or head
    text = sample.decode(errors="replace")
    best, best_score = ",", (0, 0)
    for delimiter in _DELIMITERS:
        records = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        widths = Counter(len(cells) for cells in records if len(cells) > 1)
        if widths:
            width, count = widths.most_common(1)[0]
            if (count, width) > best_score:
                best, best_score = delimiter, (count, width)
    return best


def _csv_rows(lines: _Lines, delimiter: str, limit: int, columns: list[str]) -> Iterator[Row]:
    """The rows of a CSV feed. The first record, the header, fills `columns`; the generator
    then yields _HEADER_READ, so that the header is known before the first row is asked for."""
    if csv.field_size_limit() < limit:
        csv.field_size_limit(limit)  # the row limit, not the csv module's, decides
    text: list[str] = []  # the lines of the record being read
    problems: list[FieldError] = []  # what was wrong with them
    width = -1  # no record has that many cells: until the header is read, all go the slow way
    end = 0  # the last line of the last record
    while True:
        reader = csv.reader(_decoded(lines, text, problems, limit), delimiter=delimiter)
        try:
            for cells in reader:
                line = end + 1
                end += len(text)
                raw = (text[0] if len(text) == 1 else "".join(text)).rstrip("\r\n")[:RAW_LIMIT]
                text.clear()
                if problems:
                    yield Row(line, None, problems[0], raw)
                    problems.clear()
                elif len(cells) == width and (width > 1 or cells[0].strip()):
                    yield Row(line, dict(zip(columns, cells, strict=False)), None, raw)
                elif len(cells) > 1 or (cells and cells[0].strip()):  # blank lines are no rows
                    if width < 0:
                        columns += _header(cells, line)
                        width = len(columns)
                        yield _HEADER_READ
                    else:
                        message = f"the row has {len(cells)} cells, the header {width}"
                        yield Row(line, None, FieldError("row", "ragged_row", message), raw)
            return
        except (_RecordTooLarge, csv.Error):
            # csv.Error can only be the csv module's field size limit; a new reader goes on
            # from the next line
            line = end + 1
            end += len(text)
            yield Row(line, None, _too_large(limit), "".join(text)[:RAW_LIMIT].rstrip("\r\n"))
            text.clear()
            problems.clear()
        except _Broken as exc:
            raise FeedUnreadable(f"{exc}, after line {end}", line=end) from exc


def _header(cells: list[str], line: int) -> list[str]:
    columns = [cell.strip() for cell in cells]
    seen: dict[str, int] = {}
    for number, name in enumerate(columns, 1):
        if not name:
            raise FeedUnreadable(f"column {number} of the header has no name", line=line)
        if name in seen:
            message = f"the header names {name!r} twice (columns {seen[name]} and {number})"
            raise FeedUnreadable(message, line=line)
        seen[name] = number
    return columns


def _decoded(
    lines: _Lines, text: list[str], problems: list[FieldError], limit: int
) -> Iterator[str]:
    """Lines decoded for csv.reader, kept in `text`; a problem line is noted in `problems` and
    replaced by text of the same shape, so the record it belongs to stays whole."""
    size = 0
    for data in lines:
        if data is None:
            problems.append(_too_large(limit))
            text.append(lines.oversized)
            line = "\n"
        else:
            try:
                line = data.decode()
            except UnicodeDecodeError as exc:
                problems.append(_bad_encoding(exc))
                line = data.decode(errors="backslashreplace")
            text.append(line)
        if len(text) > 1:  # a quoted field runs on: bound the whole record
            size = (size if len(text) > 2 else len(text[0])) + len(line)
            if size > limit:
                raise _RecordTooLarge
        yield line


# JSON Lines


def _jsonl_rows(lines: _Lines, limit: int) -> Iterator[Row]:
    number = 0
    try:
        for data in lines:
            number += 1
            if data is None:
                yield Row(number, None, _too_large(limit), lines.oversized)
                continue
            try:
                text = data.decode()
            except UnicodeDecodeError as exc:
                yield Row(number, None, _bad_encoding(exc), _text(data))
                continue
            try:
                value = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                if text and not text.isspace():
                    error = FieldError("row", "invalid_json", f"not valid JSON: {exc}")
                    yield Row(number, None, error, text[:RAW_LIMIT])
                continue
            if type(value) is dict:
                yield Row(number, value, None, text[:RAW_LIMIT])
            else:
                yield Row(number, None, _not_an_object(value), text[:RAW_LIMIT])
    except _Broken as exc:
        raise FeedUnreadable(f"{exc}, after line {number}", line=number) from exc


# JSON arrays


class _ItemRefused(Exception):
    """An item of a JSON array too large or too deep to read."""


class _ItemStream(_Chained):
    """Refuses, before ijson parses them, bytes that would make an item exceed `budget` bytes
    or nest deeper than _MAX_DEPTH: ijson's memory grows with the square of the depth."""

    def __init__(self, first: bytes, read: Callable[[int], bytes], budget: int) -> None:
        super().__init__(first, read)
        self.budget = budget
        self.since_item = 0  # bytes read since ijson last gave an item
        self._depth = 0
        self._in_string = False
        self._backslashes = b""  # ending a chunk, they pair with what follows

    def read(self, size: int, /) -> bytes:
        data = super().read(size)
        self.since_item += len(data)
        if self.since_item > self.budget:
            raise _ItemRefused(f"longer than {self.budget - _CHUNK} bytes")
        self._follow_nesting(data)
        return data

    def _follow_nesting(self, data: bytes) -> None:
        if self._backslashes or b"\\" in data:
            data = self._backslashes + data
            kept = data.rstrip(b"\\")
            self._backslashes = data[len(kept) :]
            data = kept.replace(b"\\\\", b"").replace(b'\\"', b"")
        # escapes gone, quotes pair up around string content; dropping two quotes in a row
        # leaves every bracket on the same side of a string's bounds
        structure = data.translate(None, _NOT_STRUCTURE)
        if self._in_string:
            structure = b'"' + structure
        structure = structure.replace(b'""', b"")
        self._in_string = False
        if b'"' in structure:
            parts = structure.split(b'"')
            self._in_string = len(parts) % 2 == 0
            structure = b"".join(parts[::2])
        steps = map(_NESTING_STEP.__getitem__, structure)
        depths = list(itertools.accumulate(steps, initial=self._depth))
        self._depth = depths[-1]
        if max(depths) > _MAX_DEPTH:
            raise _ItemRefused(f"nested deeper than {_MAX_DEPTH} levels")


@functools.cache
def _ijson() -> Any:
    try:
        return ijson.get_backend("yajl2_c")
    except ImportError:
        return ijson


def _json_rows(head: bytes, read: Callable[[int], bytes], limit: int) -> Iterator[Row]:
    if not head.strip():
        return
    stream = _ItemStream(head, read, budget=limit + _CHUNK)
    number = 0
    try:
        for item in _ijson().items(stream, "item", use_float=True, buf_size=_CHUNK):
            number += 1
            stream.since_item = 0
            try:
                raw = orjson.dumps(item).decode()[:RAW_LIMIT]
            except orjson.JSONEncodeError:  # nested past orjson's 255 levels
                raw = json.dumps(item)[:RAW_LIMIT]
            if type(item) is dict:
                yield Row(number, item, None, raw)
            else:
                yield Row(number, None, _not_an_object(item), raw)
    except _ItemRefused as exc:
        message = f"the JSON array has an item {exc} after item {number}"
        raise FeedUnreadable(message, line=number) from exc
    except _Broken as exc:
        raise FeedUnreadable(f"{exc}, after item {number}", line=number) from exc
    except ijson.JSONError as exc:
        message = f"the JSON array breaks after item {number}: {exc}"
        raise FeedUnreadable(message, line=number) from exc
