"""CSM_DRAFT_REVIEW=interrupt: a QBR run pauses at its draft (Agent Inbox payload), resumes with an edit."""

from __future__ import annotations

from pathlib import Path

from src.app.agents.runtime import open_agent
from src.app.data.sample_book import load_sample_book
from src.app.desk.review import open_review
from tests.conftest import NOW
from tests.desk.conftest import hold_settings

ACCOUNT = "acct-0001"


async def test_a_qbr_run_pauses_for_review_and_the_edited_text_is_what_lands(tmp_path: Path) -> None:
    settings = hold_settings(tmp_path, "interrupt")
    task = {"type": "generate_qbr", "account_id": ACCOUNT, "period": "Q4 2026"}
    async with open_agent(settings) as (agent, store):
        await store.upsert_accounts(load_sample_book(today=NOW.date()))
        paused = await agent.execute(task, {})
        assert paused["status"] == "interrupted", paused
        [request] = paused["interrupts"]
        assert request["action_request"]["action"] == "draft_qbr"
        assert set(request["action_request"]["args"]) == {"account_id", "to", "subject", "body"}
        assert request["config"] == {
            "allow_ignore": True,
            "allow_respond": False,
            "allow_edit": True,
            "allow_accept": True,
        }
        assert ACCOUNT in request["description"]
        assert not (settings.data_dir / "outbox" / "drafts").exists()
        # Calling again without an answer keeps the run paused (same thread, same request).
        again = await agent.execute(task, {})
        assert again["status"] == "interrupted" and again["thread_id"] == paused["thread_id"]
        edit = {
            "type": "edit",
            "args": {
                "action": "draft_qbr",
                "args": {
                    **request["action_request"]["args"],
                    "subject": "QBR for you, edited",
                    "body": "Edited by a person.\n\nSecond paragraph.",
                },
            },
        }
        done = await agent.execute(task, {"resume": [edit]})
        assert "error" not in done and done["qbr_page_id"], done
    [eml] = (settings.data_dir / "outbox" / "drafts").glob("*.eml")
    text = eml.read_text()
    assert "QBR for you, edited" in text and "Edited by a person." in text
    async with open_review(settings) as review:
        draft = await review.records.draft(done["draft_id"])
        audit = await review.records.store.list_audit(artifact="review")
    assert draft is not None and draft.status == "edited" and draft.reviewed_by == "agent-inbox"
    assert [e.artifact for e in audit] == ["review:edited"]


async def test_an_ignored_draft_reaches_no_mailbox(tmp_path: Path) -> None:
    settings = hold_settings(tmp_path, "interrupt")
    task = {"type": "generate_qbr", "account_id": ACCOUNT, "period": "Q4 2026"}
    async with open_agent(settings) as (agent, store):
        await store.upsert_accounts(load_sample_book(today=NOW.date()))
        assert (await agent.execute(task, {}))["status"] == "interrupted"
        done = await agent.execute(task, {"resume": {"type": "ignore", "args": None}})
    assert not (settings.data_dir / "outbox" / "drafts").exists()
    async with open_review(settings) as review:
        draft = await review.records.draft(done["draft_id"])
    assert draft is not None and draft.status == "rejected" and draft.location is None
