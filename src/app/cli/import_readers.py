"""Streaming readers for `csm import`: CSV, a JSON array, JSON Lines and the project's own book files.

Each reader takes an open binary file and yields `(line, item, record)` per row, or `(line, item, problem)` for
a row that cannot be read, holding one row (and one read chunk) at a time: memory stays flat in the file size.
Bytes that are not UTF-8 are kept as lone surrogates and reported by the row's validation.

JSON is decoded by pydantic-core's Rust parser (`from_json`, already a base dependency; about twice as fast as
the standard library's), falling back to the standard library wherever it refuses, so every value and every error
message is the standard library's. A JSON array is read from a sliding buffer one item at a time, not by a
third-party event parser: that gives every item its line number, which is what a person fixing the file needs.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import deque
from collections.abc import Iterator, Mapping
from typing import IO, Any, Literal

from pydantic import BaseModel, Field
from pydantic_core import from_json

FileFormat = Literal["csv", "json", "jsonl"]
UNDECODABLE = "surrogateescape"
CHUNK_CHARS = 1 << 20
MAX_ITEM_CHARS = 64 << 20
"""A JSON item still undecodable after this much text is an error (a broken file is not read whole into memory)."""
BOOK_ACCOUNTS_KEY = "accounts"
"""A book file (`{"as_of": ..., "accounts": [...]}`, as the project writes it) holds its rows under this key."""
_WHITESPACE = " \t\r\n"
_NOT_SPACE = re.compile(f"[^{_WHITESPACE}]")
TOO_DEEP = "JSON nested too deeply to be an account record"


class RowProblem(BaseModel):
    """Why one row of the file was not imported."""

    line: int = Field(description="1-based line of the file where the row starts.")
    item: int | None = Field(default=None, description="0-based index in a JSON array file.")
    account_id: str | None = None
    message: str


Row = tuple[int, int | None, Mapping[str, Any] | RowProblem]
"""(line, item, record) for a readable row, (line, item, problem) for one that is not; item: the 0-based index
in a JSON array, else None."""


class ImportFileError(ValueError):
    """The file as a whole cannot be read (missing, unknown format, not a JSON array of objects)."""


def read_rows(handle: IO[bytes], fmt: FileFormat) -> Iterator[Row]:
    """(line, item, record) per row of the file, or (line, item, problem) for a row that cannot be read."""
    text = io.TextIOWrapper(handle, encoding="utf-8-sig", errors=UNDECODABLE, newline="")
    if fmt == "csv":
        return _csv_rows(text)
    if fmt == "jsonl":
        return _jsonl_rows(text)
    return _JSONArrayReader(text).rows()


class _Lines:
    """Physical lines (with their endings) of a text, with push-back, counting the next line's number."""

    def __init__(self, text: IO[str]) -> None:
        self._text = text
        self._back: deque[str] = deque()
        self.next_number = 1

    def pop(self) -> str | None:
        line = self._back.popleft() if self._back else self._text.readline()
        if not line:
            return None
        self.next_number += 1
        return line

    def push_back(self, lines: list[str]) -> None:
        self._back.extendleft(reversed(lines))
        self.next_number -= len(lines)


class _Records:
    """CSV records of physical lines: one reader while rows parse, a fresh one after a row that did not."""

    def __init__(self, lines: _Lines) -> None:
        self._lines = lines
        self.used: list[str] = []
        """The lines the last record was read from (or tried)."""
        self._reader = self._fresh()

    def next(self) -> list[str] | str:
        """The cells of the next record ([] at the end of the file), or the parse error."""
        self.used = []
        try:
            return next(self._reader, [])
        except csv.Error as error:
            self._reader = self._fresh()
            return str(error)

    def resume_after_first_line(self) -> None:
        """Read again from the line after the first one the last record used (it was not a good row)."""
        self._lines.push_back(self.used[1:])
        self._reader = self._fresh()

    def _fresh(self) -> Iterator[list[str]]:
        return csv.reader(self._feed(), strict=True)

    def _feed(self) -> Iterator[str]:
        while (line := self._lines.pop()) is not None:
            self.used.append(line)
            yield line


def _csv_rows(text: IO[str]) -> Iterator[Row]:
    """Rows of a CSV file; a row that cannot be read is reported and parsing resumes on its next line.

    Resuming line by line keeps one stray quote from swallowing every row after it into a single cell.
    """
    lines = _Lines(text)
    records = _Records(lines)
    header = records.next()
    if isinstance(header, str):
        raise ImportFileError(f"line 1: unreadable CSV header: {header}")
    if not header:
        return
    columns = [name.strip() for name in header]
    if "account_id" not in columns:
        raise ImportFileError(f"line 1: the CSV header has no account_id column (columns: {', '.join(columns)})")
    while True:
        line = lines.next_number
        cells = records.next()
        if not records.used:
            return
        if isinstance(cells, str):
            records.resume_after_first_line()
            yield line, None, RowProblem(line=line, message=f"unreadable CSV row: {cells}")
        elif not any(cell.strip() for cell in cells):
            continue
        elif len(cells) != len(columns):
            records.resume_after_first_line()
            message = f"unreadable CSV row: {len(cells)} cells, the header has {len(columns)} columns"
            yield line, None, RowProblem(line=line, account_id=printable(cells[0]), message=message)
        else:
            record = {
                name: _structured(cell) if cell[0] in "[{" else cell
                for name, value in zip(columns, cells, strict=True)
                if (cell := value.strip())
            }
            yield line, None, record


def _structured(text: str) -> Any:
    """A CSV cell holding a list or an object (features, tickets) as JSON, else the text as it is."""
    try:
        return loads(text)
    except (json.JSONDecodeError, RecursionError):
        return text


def loads(text: str) -> Any:
    """`json.loads(text)`: pydantic's Rust parser first (3x faster), the standard library's where it refuses.

    The fast parser refuses what the standard one reads differently (lone surrogates, nesting past 200 levels)
    or not at all, so every result, and every error message, is the standard library's.
    """
    try:
        return from_json(text)
    except (ValueError, TypeError):
        return json.loads(text)


def _jsonl_rows(text: IO[str]) -> Iterator[Row]:
    for line, content in enumerate(text, start=1):
        if not content.strip():
            continue
        try:
            item = loads(content)
        except json.JSONDecodeError as error:
            yield line, None, RowProblem(line=line, message=f"invalid JSON: {error.msg} (column {error.colno})")
            continue
        except RecursionError:
            yield line, None, RowProblem(line=line, message=TOO_DEEP)
            continue
        yield line, None, object_or_problem(item, line, None)


class _JSONArrayReader:
    """Items of a JSON array (or of a book file's `accounts` array), decoded one at a time from a sliding buffer."""

    def __init__(self, text: IO[str]) -> None:
        self._text = text
        self._buffer = ""
        self._position = 0
        self._line = 1
        self._eof = False
        self._decoder = json.JSONDecoder()

    def rows(self) -> Iterator[Row]:
        first = self._peek()
        if first == "{":
            yield from self._book()
        elif first == "[":
            yield from self._array()
        else:
            raise ImportFileError("line 1: a JSON file must hold an array of account objects (or a book file)")

    def _book(self) -> Iterator[Row]:
        """A book file: the `accounts` array is streamed, every other member is read and skipped."""
        self._expect("{")
        found = False
        while self._peek() != "}":
            key = self._value("a member name")
            self._expect(":")
            if key == BOOK_ACCOUNTS_KEY:
                found = True
                yield from self._array()
            else:
                self._value(f"the value of {key!r}")
            if self._peek() == ",":
                self._expect(",")
        if not found:
            raise ImportFileError(f'line 1: a JSON object must be a book file with an "{BOOK_ACCOUNTS_KEY}" array')

    def _array(self) -> Iterator[Row]:
        self._expect("[")
        index = 0
        while self._peek() not in ("]", ""):
            line = self._line
            try:
                item = self._item(index)
            except RecursionError:
                self._skip_value()
                yield line, index, RowProblem(line=line, item=index, message=TOO_DEEP)
            else:
                yield line, index, object_or_problem(item, line, index)
            index += 1
            if self._peek() == ",":
                self._advance(self._position + 1)
        self._expect("]")

    def _item(self, index: int) -> Any:
        """The next array item, by the fast parser when it ends where the file's layout says, else by `_value`.

        The guess (the end of the item's line, or for an item that opens a block the line that closes it at the
        item's own indentation) is kept only when the text up to it is one whole JSON value, which then is the
        item. One item per line is how the project writes book files; `json.dumps(indent=...)` writes blocks.
        The caller has stepped to the item's first character.
        """
        start = self._position
        end = self._guessed_end(start)
        if end is not None:
            try:
                item = from_json(self._buffer[start:end])
            except (ValueError, TypeError):
                pass
            else:
                self._advance(end)
                return item
        return self._value(f"item [{index}]")

    def _guessed_end(self, start: int) -> int | None:
        buffer = self._buffer
        line_end = buffer.find("\n", start)
        if line_end == -1:
            return None
        text = buffer[start:line_end].rstrip(_WHITESPACE)
        if text not in ("{", "["):
            return start + len(text) - text.endswith(",")  # a comma after the item is the array's separator
        indent = buffer[buffer.rfind("\n", 0, start) + 1 : start]
        if indent.strip(" \t"):
            return None
        close = buffer.find(f"\n{indent}{'}' if text == '{' else ']'}", line_end)
        return None if close == -1 else close + len(indent) + 2

    def _value(self, what: str) -> Any:
        """Decode the next JSON value, reading more of the file while it is cut off at the buffer's end."""
        self._peek()
        while True:
            try:
                value, end = self._decoder.raw_decode(self._buffer, self._position)
            except json.JSONDecodeError as error:
                if self._eof or len(self._buffer) - self._position > MAX_ITEM_CHARS:
                    line = self._line + self._buffer.count("\n", self._position, error.pos)
                    raise ImportFileError(f"line {line}: invalid JSON in {what}: {error.msg}") from None
                self._fill()
                continue
            self._advance(end)
            return value

    def _skip_value(self) -> None:
        """Step over one JSON value without decoding it (brackets counted outside strings)."""
        depth, in_string, escaped = 0, False, False
        position = self._position
        while True:
            if position >= len(self._buffer):
                if self._eof:
                    raise ImportFileError(f"line {self._line}: the JSON file ends inside an item")
                offset = position - self._position
                self._fill()
                position = self._position + offset
                continue
            char = self._buffer[position]
            position += 1
            if in_string:
                escaped, in_string = (False, True) if escaped else (char == "\\", char != '"')
            elif char == '"':
                in_string = True
            elif char in "[{":
                depth += 1
            elif char in "]}":
                depth -= 1
                if depth == 0:
                    self._advance(position)
                    return

    def _peek(self) -> str:
        """The next character that is not white space ('' at the end of the file), skipping the space."""
        while True:
            found = _NOT_SPACE.search(self._buffer, self._position)
            position = len(self._buffer) if found is None else found.start()
            self._advance(position)
            if position < len(self._buffer) or self._eof:
                return self._buffer[position : position + 1]
            self._fill()

    def _expect(self, char: str) -> None:
        found = self._peek()
        if found != char:
            shown = repr(found) if found else "the end of the file"
            raise ImportFileError(f"line {self._line}: expected {char!r} in the JSON file, found {shown}")
        self._advance(self._position + 1)

    def _advance(self, position: int) -> None:
        self._line += self._buffer.count("\n", self._position, position)
        self._position = position

    def _fill(self) -> None:
        chunk = self._text.read(CHUNK_CHARS)
        self._eof = not chunk
        self._buffer = self._buffer[self._position :] + chunk
        self._position = 0


def object_or_problem(item: Any, line: int, index: int | None) -> Mapping[str, Any] | RowProblem:
    """A decoded JSON item as a record (null values dropped), or the problem when it is not an object."""
    if isinstance(item, dict):
        return item if None not in item.values() else {key: value for key, value in item.items() if value is not None}
    kind = type(item).__name__
    return RowProblem(line=line, item=index, message=f"a JSON {kind}, not an account object")


def printable(text: str) -> str:
    r"""`text` with bytes that were not UTF-8 shown as `\xNN` escapes (safe to print and to encode as JSON)."""
    try:
        return text.encode("utf-8", UNDECODABLE).decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # an unpaired surrogate from a JSON escape (\ud800), not a byte of the file
        return text.encode("utf-8", "backslashreplace").decode()
