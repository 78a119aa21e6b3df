"""`csm drafts`, `csm accounts` and `csm users` on a held scan, and a direct-mode edit rewriting the local draft."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from src.app.agents.runtime import open_agent
from src.app.cli import app
from src.app.config import CSMSettings
from src.app.data.sample_book import load_sample_book
from src.app.desk.review import open_review
from tests.conftest import NOW
from tests.desk.conftest import hold_settings

runner = CliRunner()


def csm(settings: CSMSettings, *args: str, env: dict[str, str] | None = None) -> str:
    result = runner.invoke(
        app, [*args, "--data-dir", str(settings.data_dir)], env={"CSM_REVIEWER": "cli@example.com", **(env or {})}
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_the_drafts_commands_list_show_approve_reject_and_edit(scanned_hold: CSMSettings, tmp_path: Path) -> None:
    listed = json.loads(csm(scanned_hold, "drafts", "list", "--status", "pending", "--json"))["drafts"]
    assert len(listed) >= 3 and {d["status"] for d in listed} == {"pending"}
    first, second, third = (d["draft_id"] for d in listed[:3])
    assert "Status: pending" in csm(scanned_hold, "drafts", "show", first)
    assert "approved" in csm(scanned_hold, "drafts", "approve", first, first)
    assert "rejected" in csm(scanned_hold, "drafts", "reject", second, "--reason", "wrong owner")
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nprintf 'Subject: Edited in the terminal\\n\\nShort and clear.\\n' > \"$1\"\n")
    editor.chmod(editor.stat().st_mode | stat.S_IEXEC)
    assert "edited and approved" in csm(scanned_hold, "drafts", "edit", third, env={"EDITOR": str(editor)})
    statuses = {d["draft_id"]: d for d in json.loads(csm(scanned_hold, "drafts", "--json", "--limit", "50"))["drafts"]}
    assert statuses[first]["status"] == "approved" and statuses[first]["reviewed_by"] == "cli@example.com"
    assert statuses[second]["status"] == "rejected" and statuses[third]["subject"] == "Edited in the terminal"
    owner = statuses[first]["to"]
    owned = json.loads(csm(scanned_hold, "accounts", "list", "--owner", owner, "--json"))["accounts"]
    assert owned and {a["rep_email"] for a in owned} == {owner}
    alerted = statuses[first]["account_id"]
    name = next(
        a["name"] for a in json.loads(csm(scanned_hold, "accounts", "list", "--search", alerted, "--json"))["accounts"]
    )
    shown = json.loads(csm(scanned_hold, "accounts", "show", name, "--json"))
    assert shown["account"]["account_id"] == alerted and shown["history"] and shown["drafts"]


def test_users_add_refuses_a_duplicate_and_a_short_password(scanned_hold: CSMSettings) -> None:
    csm(scanned_hold, "users", "add", "Lead@Example.com", "--role", "lead", "--password", "long-enough")
    again = runner.invoke(
        app,
        [
            "users",
            "add",
            "lead@example.com",
            "--role",
            "lead",
            "--password",
            "long-enough",
            "--data-dir",
            str(scanned_hold.data_dir),
        ],
    )
    assert again.exit_code == 1 and "already exists" in again.output
    short = runner.invoke(
        app,
        [
            "users",
            "add",
            "x@example.com",
            "--role",
            "rep",
            "--password",
            "short",
            "--data-dir",
            str(scanned_hold.data_dir),
        ],
    )
    assert short.exit_code == 1


@pytest.mark.parametrize("mode", ["direct"])
async def test_a_direct_mode_edit_rewrites_the_local_draft(tmp_path: Path, mode: str) -> None:
    settings = hold_settings(tmp_path, mode)
    async with open_agent(settings) as (agent, store):
        await store.upsert_accounts(load_sample_book(today=NOW.date()))
        await agent.execute({"type": "health_scan"}, {})
    async with open_review(settings) as review:
        draft = (await review.records.drafts(status="pending"))[0]
        assert draft.location is not None and Path(draft.location).exists()
        outcome = await review.edit(draft.draft_id, by="lead@example.com", subject="Rewritten", body_text="New words.")
    assert not outcome.delivered and "New words." in Path(draft.location).read_text()
