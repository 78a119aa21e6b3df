"""CSM_DRAFT_REVIEW=interrupt through the real `langgraph dev` server: a QBR run pauses, an edit resumes it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from langgraph_sdk import get_client

from src.app.config import CSMSettings
from src.app.data.sample_book import load_sample_book
from src.app.desk.review import open_review
from src.app.tools.store.sql import SQLStore
from tests.conftest import NOW
from tests.support.langgraph_dev import langgraph_dev, server_log

ACCOUNT = "acct-0001"
TASK = {"type": "generate_qbr", "account_id": ACCOUNT, "period": "Q4 2026"}
HUMAN_INTERRUPT_CONFIG = {"allow_ignore": True, "allow_respond": False, "allow_edit": True, "allow_accept": True}


async def _seed(data_dir: Path) -> None:
    store = SQLStore(f"sqlite:///{data_dir / 'csm.sqlite'}")
    await store.upsert_accounts(load_sample_book(today=NOW.date()))
    await store.aclose()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A `langgraph dev` server whose graphs review drafts with `interrupt()`, and its data dir."""
    folder = tmp_path_factory.mktemp("langgraph-dev-review")
    data_dir = folder / "csm-data"
    asyncio.run(_seed(data_dir))
    with langgraph_dev(folder, {"CSM_DATA_DIR": str(data_dir), "CSM_DRAFT_REVIEW": "interrupt"}) as url:
        yield url, folder


async def test_a_qbr_run_pauses_over_http_and_the_edited_text_is_what_lands(served: tuple[str, Path]) -> None:
    url, folder = served
    data_dir = folder / "csm-data"
    client = get_client(url=url)
    thread = await client.threads.create()
    paused = await client.runs.wait(thread["thread_id"], "customer_success", input={"task": TASK})
    assert isinstance(paused, dict) and "__interrupt__" in paused, (paused, server_log(folder))

    # What Studio and Agent Inbox read: the thread waits on one interrupt holding one HumanInterrupt.
    state = await client.threads.get_state(thread["thread_id"])
    assert state["next"] and not (data_dir / "outbox" / "drafts").exists()
    [interrupt] = state["interrupts"]
    [request] = interrupt["value"]
    assert request["action_request"]["action"] == "draft_qbr"
    assert set(request["action_request"]["args"]) == {"account_id", "to", "subject", "body"}
    assert request["action_request"]["args"]["account_id"] == ACCOUNT
    assert request["config"] == HUMAN_INTERRUPT_CONFIG and ACCOUNT in request["description"]

    args = {**request["action_request"]["args"], "subject": "QBR, edited in the inbox", "body": "Edited over HTTP."}
    edited = {**request["action_request"], "args": args}
    done = await client.runs.wait(
        thread["thread_id"], "customer_success", command={"resume": [{"type": "edit", "args": edited}]}
    )
    assert isinstance(done, dict) and "__interrupt__" not in done, (done, server_log(folder))
    result = done["result"]
    assert "error" not in result and result["qbr_page_id"] and result["draft_id"], result
    assert not (await client.threads.get_state(thread["thread_id"]))["next"]

    [eml] = (data_dir / "outbox" / "drafts").glob("*.eml")
    text = eml.read_text(encoding="utf-8")
    assert "QBR, edited in the inbox" in text and "Edited over HTTP." in text
    settings = CSMSettings(data_dir=data_dir, database_url=None, _env_file=None)  # type: ignore[call-arg]
    async with open_review(settings) as review:
        draft = await review.records.draft(result["draft_id"])
        audit = await review.records.store.list_audit(artifact="review")
    assert draft is not None and draft.status == "edited" and draft.reviewed_by == "agent-inbox"
    assert draft.subject == "QBR, edited in the inbox"
    assert [(entry.artifact, entry.account_id) for entry in audit] == [("review:edited", ACCOUNT)]
