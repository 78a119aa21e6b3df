"""`csm import FILE`: read account records from CSV, JSON or JSON Lines, validate each, upsert the good ones.

Every row is checked with the same parsers a scan uses (`parse_account` for identity and detail,
`signals_from_record` for the health signals). A bad row is reported with its line number and why (the field
and the value) and never stops the import; bytes that are not UTF-8 make only their own row bad.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field
from rich.console import Console

from src.app.analysis.signals import AccountDataError, parse_account, signals_from_record
from src.app.tools.store import CSMStore

FileFormat = Literal["csv", "json", "jsonl"]
_FORMATS: dict[str, FileFormat] = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")
"""One physical line with its ending (the csv module's notion of a line)."""
_ITEM = "\0item"
"""Internal key carrying a JSON array row's index to its report (removed before validation and storage)."""
_UNDECODABLE = "surrogateescape"
"""Bytes that are not UTF-8 are kept as lone surrogates while reading, then reported per row."""


class RowProblem(BaseModel):
    """Why one row of the file was not imported."""

    line: int = Field(description="1-based line of the file where the row starts.")
    item: int | None = Field(default=None, description="0-based index in a JSON array file.")
    account_id: str | None = None
    message: str


class ImportReport(BaseModel):
    """What an import read, what it wrote and which rows it rejected."""

    file: str
    format: FileFormat
    rows: int = 0
    imported: int = 0
    dry_run: bool = False
    account_ids: list[str] = Field(default_factory=list)
    errors: list[RowProblem] = Field(default_factory=list)


class ImportFileError(ValueError):
    """The file as a whole cannot be read (missing, unknown format, not a JSON array of objects)."""


def file_format(path: Path) -> FileFormat:
    """The format named by the file's extension, or ImportFileError listing the supported ones."""
    found = _FORMATS.get(path.suffix.lower())
    if found is None:
        raise ImportFileError(f"Cannot import {path.name!r}: use a {', '.join(_FORMATS)} file")
    return found


def read_rows(data: bytes, fmt: FileFormat) -> Iterator[tuple[int, Mapping[str, Any] | RowProblem]]:
    """(line, record) per row of the file, or (line, problem) for a row that cannot be read."""
    text = data.decode("utf-8", errors=_UNDECODABLE).removeprefix("\ufeff")
    if fmt == "csv":
        return _csv_rows(text)
    if fmt == "jsonl":
        return _jsonl_rows(text)
    return _json_rows(text)


def validate_row(line: int, row: Mapping[str, Any], *, now: datetime, tz: ZoneInfo) -> dict[str, Any] | RowProblem:
    """The row as a typed account record ("12" becomes 12), or the problem naming each bad field and value."""
    item = row.get(_ITEM)
    record = {key: value for key, value in row.items() if key != _ITEM}
    raw_id = record.get("account_id")
    account_id = printable(raw_id) if isinstance(raw_id, str) else None
    undecodable = sorted({printable(name) for name, value in _strings(record) if _has_undecodable(value)})
    if undecodable:
        message = f"not valid UTF-8 in {', '.join(undecodable)}"
        return RowProblem(line=line, item=item, account_id=account_id, message=message)
    problems: list[str] = []
    typed: dict[str, Any] = {}
    for check in (lambda: parse_account(record), lambda: signals_from_record(record, now=now, tz=tz)):
        try:
            typed |= check().model_dump(mode="json", exclude_unset=True)
        except AccountDataError as error:
            problems += [p for p in error.problems if p not in problems]
    if problems:
        return RowProblem(line=line, item=item, account_id=account_id, message="; ".join(problems))
    return {key: typed.get(key, value) for key, value in record.items()}


def printable(text: str) -> str:
    r"""`text` with bytes that were not UTF-8 shown as `\xNN` escapes (safe to print and to encode as JSON)."""
    return text.encode("utf-8", _UNDECODABLE).decode("utf-8", "backslashreplace")


async def import_accounts(
    store: CSMStore, path: Path, *, now: datetime, tz: ZoneInfo, dry_run: bool = False
) -> ImportReport:
    """Validate every row of `path` and upsert the good ones (the last row wins for a repeated account id)."""
    fmt = file_format(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ImportFileError(f"Cannot read {str(path)!r}: {error.strerror or error}") from None
    report = ImportReport(file=str(path), format=fmt, dry_run=dry_run)
    good: dict[str, Mapping[str, Any]] = {}
    for line, row in read_rows(data, fmt):
        report.rows += 1
        checked = row if isinstance(row, RowProblem) else validate_row(line, row, now=now, tz=tz)
        if isinstance(checked, RowProblem):
            report.errors.append(checked)
        else:
            good[str(checked["account_id"])] = checked
    report.account_ids = sorted(good)
    if good and not dry_run:
        report.imported = await store.upsert_accounts(list(good.values()))
    return report


def _csv_rows(text: str) -> Iterator[tuple[int, Mapping[str, Any] | RowProblem]]:
    """Rows of a CSV text; a row that cannot be read is reported and parsing resumes on its next line.

    Resuming line by line keeps one stray quote from swallowing every row after it into a single cell.
    """
    lines = _LINE.findall(text)
    if not lines:
        return
    header, used = _read_record(lines, 0)
    if isinstance(header, str):
        raise ImportFileError(f"line 1: unreadable CSV header: {header}")
    columns = [name.strip() for name in header]
    if "account_id" not in columns:
        raise ImportFileError(f"line 1: the CSV header has no account_id column (columns: {', '.join(columns)})")
    start = used
    while start < len(lines):
        cells, used = _read_record(lines, start)
        line = start + 1
        if isinstance(cells, str):
            yield line, RowProblem(line=line, message=f"unreadable CSV row: {cells}")
            start += 1
        elif not any(cell.strip() for cell in cells):
            start += used
        elif len(cells) != len(columns):
            message = f"unreadable CSV row: {len(cells)} cells, the header has {len(columns)} columns"
            yield line, RowProblem(line=line, account_id=printable(cells[0]), message=message)
            start += 1
        else:
            yield line, {name: _cell(value) for name, value in zip(columns, cells, strict=True) if value.strip()}
            start += used


def _read_record(lines: list[str], start: int) -> tuple[list[str] | str, int]:
    """The cells of the CSV record starting at `lines[start]` and how many lines it used, or the parse error."""
    reader = csv.reader((lines[index] for index in range(start, len(lines))), strict=True)
    try:
        return next(reader, []), max(reader.line_num, 1)
    except csv.Error as error:
        return str(error), reader.line_num


def _cell(value: str) -> Any:
    """A CSV cell as a record value: JSON for lists and objects (features, tickets), else the stripped text."""
    text = value.strip()
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    return text


def _json_rows(text: str) -> Iterator[tuple[int, Mapping[str, Any] | RowProblem]]:
    decoder = json.JSONDecoder()
    position = _skip_space(text, 0)
    if text[position : position + 1] != "[":
        raise ImportFileError("line 1: a JSON file must hold an array of account objects")
    position = _skip_space(text, position + 1)
    index = 0
    while position < len(text) and text[position] != "]":
        line = text.count("\n", 0, position) + 1
        try:
            item, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as error:
            raise ImportFileError(f"line {error.lineno}: invalid JSON in item [{index}]: {error.msg}") from None
        yield line, _object_or_problem(item, line, index)
        index += 1
        position = _skip_space(text, position)
        if text[position : position + 1] == ",":
            position = _skip_space(text, position + 1)


def _jsonl_rows(text: str) -> Iterator[tuple[int, Mapping[str, Any] | RowProblem]]:
    for line, content in enumerate(text.splitlines(), start=1):
        if not content.strip():
            continue
        try:
            item = json.loads(content)
        except json.JSONDecodeError as error:
            yield line, RowProblem(line=line, message=f"invalid JSON: {error.msg} (column {error.colno})")
            continue
        yield line, _object_or_problem(item, line, None)


def _object_or_problem(item: Any, line: int, index: int | None) -> Mapping[str, Any] | RowProblem:
    if isinstance(item, dict):
        record = {key: value for key, value in item.items() if value is not None}
        return record if index is None else {**record, _ITEM: index}
    kind = type(item).__name__
    return RowProblem(line=line, item=index, message=f"a JSON {kind}, not an account object")


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def _strings(value: Any, name: str = "") -> Iterator[tuple[str, str]]:
    """(field, text) for every string in a record, keys included, nested values named by their top field."""
    if isinstance(value, str):
        yield name, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            field = name or str(key)
            yield from _strings(str(key), field)
            yield from _strings(item, field)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item, name)


def _has_undecodable(text: str) -> bool:
    return any("\udc80" <= char <= "\udcff" for char in text)


async def run_import(path: Path, *, data_dir: Path | None, dry_run: bool, quiet: bool) -> ImportReport:
    """`csm import`: import into the configured store and print what was imported and what was rejected."""
    from src.app.agents.runtime import settings_for
    from src.app.tools.store.sql import SQLStore

    settings = settings_for(data_dir)
    store = SQLStore(settings.resolved_database_url)
    try:
        report = await import_accounts(store, path, now=datetime.now(settings.tz), tz=settings.tz, dry_run=dry_run)
    finally:
        await store.aclose()
    _render(Console(quiet=quiet), report)
    return report


def _render(console: Console, report: ImportReport) -> None:
    from rich.markup import escape
    from rich.table import Table

    if report.errors:
        table = Table(title=f"Rejected rows ({len(report.errors)})")
        for column in ("line", "account", "problem"):
            table.add_column(column)
        for problem in report.errors:
            where = str(problem.line) if problem.item is None else f"{problem.line} (item [{problem.item}])"
            table.add_row(where, escape(problem.account_id or "-"), escape(problem.message))
        console.print(table)
    verb = "Valid (dry run, nothing written)" if report.dry_run else "Imported"
    console.print(f"{verb}: {len(report.account_ids)} of {report.rows} rows; rejected: {len(report.errors)}.")
