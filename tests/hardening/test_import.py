"""`csm import`: bad rows are reported by line and skipped, good rows upserted, hostile bytes survived."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from src.app.cli.importer import ImportFileError, import_accounts
from src.app.tools.store.sql import SQLStore
from tests.conftest import NOW
from tests.hardening.conftest import csm_env, fresh_store, run_csm
from tests.support.fakes import AT_RISK, HEALTHY, make_account

UTC_ZONE = ZoneInfo("UTC")
COLUMNS = ["account_id", "name", "rep_email", "contract_end_date", "tickets", *HEALTHY]


def csv_bytes(records: list[dict[str, Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow({k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in record.items()})
    return buffer.getvalue().encode()


async def run_import(store: SQLStore, path: Path, **options: Any) -> Any:
    return await import_accounts(store, path, now=NOW, tz=UTC_ZONE, **options)


async def test_csv_rows_are_typed_bad_ones_reported_by_line_and_a_rerun_is_idempotent(
    tmp_path: Path, store: SQLStore
) -> None:
    multiline = make_account("multi", HEALTHY, name="Multi\nLine Co", tickets=[{"subject": "SSO?", "status": "open"}])
    rows = [
        make_account("good", HEALTHY),  # line 2
        multiline,  # lines 3-4 (a quoted cell spans two lines)
        make_account("pct", {**HEALTHY, "feature_adoption_rate": 65}),  # line 5
        make_account("enum", {**AT_RISK, "usage_trend": "sideways"}),  # line 6
    ]
    path = tmp_path / "book.csv"
    path.write_bytes(csv_bytes(rows))
    report = await run_import(store, path)
    assert report.rows == 4 and report.imported == 2 and report.account_ids == ["good", "multi"]
    problems = {p.account_id: (p.line, p.message) for p in report.errors}
    assert problems["pct"] == (5, "feature_adoption_rate='65' is out of range (must be 0..1)")
    assert problems["enum"][0] == 6 and "usage_trend='sideways' is not one of" in problems["enum"][1]
    [stored] = await store.load_accounts(["good"])
    assert stored["nps_score"] == 9 and stored["feature_adoption_rate"] == 0.9  # typed, not "9" / "0.9"
    [multi] = await store.load_accounts(["multi"])
    assert multi["name"] == "Multi\nLine Co" and multi["tickets"][0]["subject"] == "SSO?"
    again = await run_import(store, path)
    assert again.imported == 2 and len(await store.load_accounts(active_only=False)) == 2


async def test_non_utf8_bytes_reject_only_their_row(tmp_path: Path, store: SQLStore) -> None:
    data = csv_bytes([make_account("a", HEALTHY), make_account("b", HEALTHY), make_account("c", HEALTHY)])
    data = data.replace(b"Company b", b"Company \xff\xfe b")
    path = tmp_path / "latin.csv"
    path.write_bytes(data)
    report = await run_import(store, path)
    assert report.account_ids == ["a", "c"]
    [problem] = report.errors
    assert (problem.line, problem.account_id, problem.message) == (3, "b", "not valid UTF-8 in name")


async def test_json_array_reports_the_item_index_and_line(tmp_path: Path, store: SQLStore) -> None:
    items: list[Any] = [make_account("ok", HEALTHY), 42, make_account("neg", {**HEALTHY, "nps_score": -1})]
    path = tmp_path / "book.json"
    path.write_text(json.dumps(items, indent=2))
    report = await run_import(store, path)
    assert report.account_ids == ["ok"]
    by_item = {p.item: p for p in report.errors}
    assert "not an account object" in by_item[1].message
    assert by_item[2].account_id == "neg" and "nps_score=-1 is out of range (must be 0..10)" in by_item[2].message
    lines = path.read_text().splitlines()
    assert lines[by_item[1].line - 1].strip() == "42,"
    assert lines[by_item[2].line - 1].strip() == "{"


async def test_jsonl_keeps_going_after_a_broken_line(tmp_path: Path, store: SQLStore) -> None:
    path = tmp_path / "book.jsonl"
    path.write_text(f"{json.dumps(make_account('a', HEALTHY))}\n{{broken\n{json.dumps(make_account('b', HEALTHY))}\n")
    report = await run_import(store, path)
    assert report.account_ids == ["a", "b"]
    assert [(p.line, p.message.split(":")[0]) for p in report.errors] == [(2, "invalid JSON")]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("book.xlsx", b"", "use a .csv, .json, .jsonl, .ndjson file"),
        ("book.csv", b"name,arr\nAcme,1\n", "no account_id column"),
        ("book.json", b'{"name": "not a book"}', 'a book file with an "accounts" array'),
        ("book.json", b'"accounts"', "array of account objects"),
        ("book.json", b'[{"account_id": "a",', "invalid JSON"),
    ],
)
async def test_unreadable_files_raise_one_clear_error(
    tmp_path: Path, store: SQLStore, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImportFileError, match=message):
        await run_import(store, path)


HOSTILE_CELL = st.binary(max_size=40) | st.sampled_from([b'"', b'""', b",", b"\n", b"\r\n", b"\x00", b"\xff", b"\xc3"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    good=st.integers(0, 3),
    hostile=st.lists(st.lists(HOSTILE_CELL, min_size=1, max_size=len(COLUMNS) + 2), max_size=6),
)
async def test_hostile_csv_bytes_never_stop_the_import(good: int, hostile: list[list[bytes]]) -> None:
    header = ",".join(COLUMNS).encode() + b"\n"
    good_rows = csv_bytes([make_account(f"good-{i}", HEALTHY) for i in range(good)]).split(b"\n", 1)[1]
    junk = b"".join(b"junk-" + bytes([65 + i]) + b"," + b",".join(cells) + b"\n" for i, cells in enumerate(hostile))
    data = header + junk + good_rows
    async with fresh_store() as (store, folder):
        path = folder / "hostile.csv"
        path.write_bytes(data)
        report = await run_import(store, path)
        json.dumps(report.model_dump(mode="json"))  # every message is printable and JSON-safe
        stored = {r["account_id"] for r in await store.load_accounts(active_only=False)}
        assert stored == set(report.account_ids)
        assert {f"good-{i}" for i in range(good)} <= stored
        total_lines = data.count(b"\n") + data.count(b"\r") + 1
        assert all(2 <= problem.line <= total_lines for problem in report.errors)
        assert len(report.account_ids) + len(report.errors) <= report.rows


def test_csm_import_command_prints_json_and_exits_1_when_rows_were_rejected(tmp_path: Path) -> None:
    path = tmp_path / "book.csv"
    path.write_bytes(csv_bytes([make_account("a", HEALTHY), make_account("b", {**HEALTHY, "nps_score": 42})]))
    done = run_csm("import", str(path), "--json", env=csm_env(tmp_path / "data"))
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["account_ids"] == ["a"] and report["imported"] == 1
    assert report["errors"] == [
        {"line": 3, "item": None, "account_id": "b", "message": "nps_score='42' is out of range (must be 0..10)"}
    ]


async def test_a_book_file_as_the_project_writes_it_is_imported(tmp_path: Path, store: SQLStore) -> None:
    accounts = [make_account("a", HEALTHY), {"account_id": "bad"}, make_account("b", AT_RISK)]
    path = tmp_path / "book.json"
    path.write_text(json.dumps({"as_of": "2026-11-24", "accounts": accounts, "generator": {"seed": 7}}, indent=1))
    report = await run_import(store, path)
    assert report.account_ids == ["a", "b"] and report.rows == 3
    [problem] = report.errors
    assert problem.item == 1 and problem.account_id == "bad"
    assert problem.line == path.read_text().splitlines().index("  {", 0) + 1 + _object_lines(accounts[0])


def _object_lines(record: dict[str, Any]) -> int:
    """Lines the first account object takes in an indent=1 dump nested one level (the bad row starts after it)."""
    return len(json.dumps(record, indent=1).splitlines())


@pytest.mark.parametrize("chunk", [7, 64, 1 << 20])
async def test_json_arrays_stream_across_read_chunks_with_exact_lines(
    tmp_path: Path, store: SQLStore, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr("src.app.cli.import_readers.CHUNK_CHARS", chunk)
    rows = [make_account(f"acct-{i:03d}", HEALTHY) for i in range(40)]
    rows[25] = {**rows[25], "feature_adoption_rate": 65}
    path = tmp_path / "book.json"
    path.write_text("[\n" + ",\n".join(json.dumps(row) for row in rows) + "\n]\n")
    report = await run_import(store, path)
    assert len(report.account_ids) == 39
    [problem] = report.errors
    assert (problem.line, problem.item, problem.account_id) == (27, 25, "acct-025")
    assert "feature_adoption_rate=65" in problem.message


async def test_good_rows_are_written_in_batches_and_the_last_row_wins(
    tmp_path: Path, store: SQLStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("src.app.cli.importer.UPSERT_BATCH", 3)
    rows = [make_account(f"acct-{i}", HEALTHY) for i in range(7)] + [
        {**make_account("acct-1", HEALTHY), "name": "Last"}
    ]
    path = tmp_path / "book.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    seen: list[int] = []
    report = await import_accounts(store, path, now=NOW, tz=UTC_ZONE, progress=lambda r, done, size: seen.append(r))
    assert report.imported == 7 and report.repeated == 1 and seen == [3, 6]
    [stored] = await store.load_accounts(["acct-1"], active_only=False)
    assert stored["name"] == "Last"


HOSTILE_ROWS: list[tuple[str, str]] = [
    ('{"account_id": "nul", "name": "Acme\\u0000Corp"}', "name contains a NUL character"),
    ('{"account_id": "nan", "arr": NaN}', "arr=nan is not a finite number"),
    ('{"account_id": "inf", "arr": -Infinity}', "arr=-inf is not a finite number"),
    ('{"account_id": "huge", "arr": 1e400}', "arr=inf is not a finite number"),
    ('{"account_id": "deep", "notes": ' + "[" * 5000 + "]" * 5000 + "}", "nested too deeply"),
]


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
async def test_one_hostile_row_never_aborts_an_import(tmp_path: Path, fmt: str) -> None:
    good = [json.dumps(make_account(f"good-{i}", HEALTHY)) for i in range(3)]
    rows = [good[0], *(row for row, _ in HOSTILE_ROWS), good[1], good[2]]
    path = tmp_path / f"book.{fmt}"
    path.write_text("\n".join(rows) + "\n" if fmt == "jsonl" else "[\n" + ",\n".join(rows) + "\n]\n")
    async with fresh_store() as (store, _):
        report = await run_import(store, path)
        assert report.account_ids == ["good-0", "good-1", "good-2"]
        assert len(await store.load_accounts(active_only=False)) == 3
    first = 2 if fmt == "jsonl" else 3  # a JSON array's rows start on line 2, after the '['
    assert [problem.line for problem in report.errors] == list(range(first, first + 5))
    for problem, (_, message) in zip(report.errors, HOSTILE_ROWS, strict=True):
        assert message in problem.message, problem


async def test_an_unpaired_surrogate_escape_rejects_only_its_row(tmp_path: Path, store: SQLStore) -> None:
    rows = [make_account("a", HEALTHY), make_account("odd", HEALTHY, nickname="x\ud800y"), make_account("b", HEALTHY)]
    path = tmp_path / "book.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))  # ASCII: "\ud800" stays an escape
    report = await run_import(store, path)
    assert report.account_ids == ["a", "b"]
    [problem] = report.errors
    assert (problem.line, problem.account_id, problem.message) == (2, "odd", "unpaired UTF-16 surrogate in nickname")


async def test_a_csv_cell_nested_too_deeply_rejects_only_its_row(tmp_path: Path, store: SQLStore) -> None:
    rows = [make_account("a", HEALTHY), make_account("deep", HEALTHY, tickets="DEEP"), make_account("b", HEALTHY)]
    path = tmp_path / "book.csv"
    path.write_bytes(csv_bytes(rows).replace(b"DEEP", b"[" * 5000 + b"]" * 5000))
    report = await run_import(store, path)
    assert report.account_ids == ["a", "b"]
    [problem] = report.errors
    assert (problem.line, problem.account_id) == (3, "deep") and problem.message.startswith("tickets=")


@pytest.mark.parametrize("found", ["before writing", "by the store's write"])
async def test_a_row_the_store_refuses_is_reported_and_the_rest_of_its_batch_written(
    tmp_path: Path, store: SQLStore, monkeypatch: pytest.MonkeyPatch, found: str
) -> None:
    monkeypatch.setattr("src.app.cli.importer.UPSERT_BATCH", 4)
    if found == "by the store's write":  # the safety net: a check the importer does not make up front
        monkeypatch.setattr("src.app.cli.importer.checked_account_text", lambda record: None)
    rows = [make_account(f"acct-{i}", HEALTHY) for i in range(7)]
    rows[2] = {**rows[2], "status": "s" * 70}  # valid for the parser, longer than the store's column
    path = tmp_path / "book.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    report = await run_import(store, path)
    assert report.account_ids == [f"acct-{i}" for i in (0, 1, 3, 4, 5, 6)] and report.imported == 6
    [problem] = report.errors
    assert (problem.line, problem.account_id) == (3, "acct-2")
    assert problem.message.startswith("not stored: accounts.status allows 64 characters, got 70")
    assert len(await store.load_accounts(active_only=False)) == 6


async def test_a_last_row_the_store_refuses_keeps_the_earlier_good_row_for_its_id(
    tmp_path: Path, store: SQLStore
) -> None:
    good = {**make_account("acct-1", HEALTHY), "name": "Good"}
    rows = [good, make_account("acct-2", HEALTHY), {**good, "name": "Refused", "status": "s" * 70}]
    path = tmp_path / "book.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    report = await run_import(store, path)
    assert report.account_ids == ["acct-1", "acct-2"] and report.imported == 2 and report.repeated == 0
    [problem] = report.errors
    assert (problem.line, problem.account_id) == (3, "acct-1")
    assert problem.message.startswith("not stored: accounts.status allows 64 characters, got 70")
    [stored] = await store.load_accounts(["acct-1"], active_only=False)
    assert stored["name"] == "Good"


async def test_a_dry_run_reports_the_rows_the_store_would_refuse_and_writes_nothing(
    tmp_path: Path, store: SQLStore
) -> None:
    rows = [make_account(f"acct-{i}", HEALTHY) for i in range(3)]
    rows[1] = {**rows[1], "status": "s" * 70}
    path = tmp_path / "book.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    report = await run_import(store, path, dry_run=True)
    assert report.account_ids == ["acct-0", "acct-2"] and report.imported == 0 and report.dry_run
    [problem] = report.errors
    assert (problem.line, problem.account_id) == (2, "acct-1")
    assert problem.message.startswith("not stored: accounts.status allows 64 characters, got 70")
    assert await store.count_accounts(active_only=False) == 0


async def test_an_oddity_typing_would_drop_still_rejects_its_row(tmp_path: Path, store: SQLStore) -> None:
    tickets = [{"subject": "SSO?", "note\u0000": "x"}]  # a key no ticket field reads, with a NUL character
    rows = [make_account("a", HEALTHY), make_account("odd", HEALTHY, tickets=tickets), make_account("b", HEALTHY)]
    path = tmp_path / "book.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    report = await run_import(store, path)
    assert report.account_ids == ["a", "b"]
    [problem] = report.errors
    assert (problem.line, problem.account_id, problem.message) == (2, "odd", "tickets contains a NUL character")
    [stored] = await store.load_accounts(["a"], active_only=False)
    assert stored == {**make_account("a", HEALTHY), **stored} and stored["nps_score"] == 9
