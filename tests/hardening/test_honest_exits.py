"""Failed commands exit non-zero with one line on stderr; an emptied store is not refilled; bad periods are refused."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hardening.conftest import csm_env, run_csm
from tests.support.notion_server import ACCOUNTS_SCHEMA, NotionServer


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr, stderr
    return lines[0]


def test_an_unknown_account_fails_with_status_1_and_one_line(tmp_path: Path) -> None:
    done = run_csm("qbr", "no-such-account", "--json", env=csm_env(tmp_path))
    assert done.returncode == 1
    assert json.loads(done.stdout)["partial"] is True  # --json still prints the fail-open result
    assert "Account 'no-such-account' was not found" in one_error_line(done.stderr)


def test_a_corrupted_database_is_one_sentence_saying_what_to_do(tmp_path: Path) -> None:
    broken = tmp_path / "csm.sqlite"
    broken.write_bytes(b"this is not a database" * 100)
    done = run_csm("scan", env=csm_env(tmp_path))
    assert done.returncode == 1
    line = one_error_line(done.stderr)
    assert "not a readable SQLite database" in line and "move the file aside" in line
    assert len(done.stderr.splitlines()) <= 3


def test_an_emptied_store_is_not_refilled_with_the_sample_book(tmp_path: Path) -> None:
    env = csm_env(tmp_path)
    first = run_csm("scan", "--json", env=env)
    assert first.returncode == 0 and "loaded the sample book (300 accounts)" in first.stderr  # said under --json too
    with sqlite3.connect(tmp_path / "csm.sqlite") as connection:
        connection.execute("DELETE FROM accounts")
    again = run_csm("scan", "--json", env=env)
    assert again.returncode == 1
    assert "has no accounts but has been used before" in one_error_line(again.stderr)
    with sqlite3.connect(tmp_path / "csm.sqlite") as connection:
        assert connection.execute("SELECT count(*) FROM accounts").fetchone() == (0,)


@pytest.mark.parametrize("period", ["Q5 2026", "Q0 2026", "Q3 2026" + "x" * 600, "2026"])
def test_an_impossible_period_is_refused_before_anything_is_written(tmp_path: Path, period: str) -> None:
    done = run_csm("qbr", "acct-0001", "--period", period, "--json", env=csm_env(tmp_path))
    assert done.returncode == 1
    assert "'period' must be a quarter label like 'Q3 2026'" in one_error_line(done.stderr)
    with sqlite3.connect(tmp_path / "csm.sqlite") as connection:
        assert connection.execute("SELECT count(*) FROM drafts").fetchone() == (0,)
        assert connection.execute("SELECT count(*) FROM qbr_pages").fetchone() == (0,)
    assert not list((tmp_path / "outbox").rglob("*.eml"))


def test_import_with_notion_configured_is_refused_not_written_where_no_scan_reads(tmp_path: Path) -> None:
    book = tmp_path / "book.jsonl"
    book.write_text(json.dumps({"account_id": "acct-1", "name": "Beacon"}) + "\n")
    env = csm_env(tmp_path, CSM_NOTION_TOKEN="secret_notion_import_123", CSM_NOTION_ACCOUNTS_DATABASE_ID="db-1")
    done = run_csm("import", str(book), env=env)
    assert done.returncode == 2
    assert "Accounts are read from the Notion database db-1" in one_error_line(done.stderr)
    assert not (tmp_path / "csm.sqlite").exists()


@pytest.fixture
def remountable(tmp_path: Path) -> Iterator[Path]:
    """A small tmpfs that the test can make read-only (skipped where mounting is not permitted)."""
    folder = tmp_path / "mnt"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here to make a read-only data folder: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def test_a_read_only_data_folder_is_one_sentence_and_exit_1(remountable: Path) -> None:
    env = csm_env(remountable)
    assert run_csm("scan", "--json", env=env).returncode == 0
    subprocess.run(["mount", "-o", "remount,ro", str(remountable)], check=True)
    for command in (["scan"], ["drafts", "list"], ["qbr", "acct-0001"]):
        done = run_csm(*command, env=env)
        assert done.returncode == 1, (command, done.stderr)
        assert "the data folder cannot be written" in one_error_line(done.stderr)


NOTION_TOKEN = "secret_exit_token_4821"


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("bad token", "Notion rejected the integration token"),
        ("missing database", "not found or not shared with the integration (404 object_not_found)"),
        ("notion down", "Notion did not answer"),
    ],
)
def test_notion_failures_exit_1_with_one_line(tmp_path: Path, case: str, expected: str) -> None:
    with NotionServer(token=NOTION_TOKEN) as server:
        database_id, _ = server.add_database("Accounts", ACCOUNTS_SCHEMA)
        settings = {"CSM_NOTION_TOKEN": NOTION_TOKEN, "CSM_NOTION_ACCOUNTS_DATABASE_ID": database_id}
        settings["CSM_NOTION_BASE_URL"] = server.base_url
        if case == "bad token":
            settings["CSM_NOTION_TOKEN"] = "secret_wrong_token_7731"
        elif case == "missing database":
            settings["CSM_NOTION_ACCOUNTS_DATABASE_ID"] = "0" * 32
        else:
            settings["CSM_NOTION_BASE_URL"] = "http://127.0.0.1:9"  # discard port: nothing listens
        done = run_csm("scan", "--json", env=csm_env(tmp_path, **settings))
    assert done.returncode == 1
    assert expected in one_error_line(done.stderr)
    assert NOTION_TOKEN not in done.stdout + done.stderr
    assert json.loads(done.stdout)["partial"] is True


def test_a_full_disk_is_one_sentence_and_exit_1(remountable: Path) -> None:
    env = csm_env(remountable)
    assert run_csm("scan", "--json", env=env).returncode == 0
    filler = remountable / "filler"
    with filler.open("wb") as handle, pytest.raises(OSError, match="No space left"):
        while True:
            handle.write(b"\0" * (1 << 20))
    for command in (["scan"], ["adoption", "acct-0001"], ["qbr", "acct-0002"]):
        done = run_csm(*command, env=env)
        assert done.returncode == 1, (command, done.stderr)
        assert "the disk holding the data folder is full or failing" in one_error_line(done.stderr)
