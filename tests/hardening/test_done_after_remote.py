""" "Done" only after the remote write: a QBR whose page failed, or whose run was killed before its audit row,
is finished by the next run, and the scheduler does not count it as done before."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from src.app.analysis.health import CSMHealthScorer
from src.app.context import CSMContext
from src.app.graph.customer_success import build_customer_success_graph
from src.app.tools.store import AuditEntry, CSMStore
from src.app.tools.store.sql import SQLStore
from tests.conftest import NOW
from tests.hardening.conftest import offline_settings
from tests.integration.test_notion_pages import TOKEN, creates, open_workspace
from tests.support.fakes import HEALTHY, RecordingChat, RecordingEvents, RecordingMail, ScriptedLLM, make_account
from tests.support.notion_server import NotionServer

graph = build_customer_success_graph()
TASK = {"type": "generate_qbr", "account_id": "acct-1", "period": "Q4 2026", "trigger": "quarterly"}


class Killed(BaseException):
    """The process dying at a chosen write."""


class DyingAudit:
    """A store that dies once, right before writing the audit row of `artifact` (the write before it is kept)."""

    def __init__(self, inner: SQLStore, artifact: str) -> None:
        self._inner, self._artifact, self.armed = inner, artifact, True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def record_audit(self, entry: AuditEntry) -> None:
        if self.armed and entry.artifact == self._artifact:
            self.armed = False
            raise Killed
        await self._inner.record_audit(entry)


def context(store: Any, folder: Path) -> CSMContext:
    return CSMContext(
        settings=offline_settings(folder / "data"),
        store=store,
        llm=ScriptedLLM(),
        mail=RecordingMail(),
        chat=RecordingChat(),
        events=RecordingEvents(),
        scorer=CSMHealthScorer(),
        clock=lambda: NOW,
    )


async def run_qbr(store: CSMStore, folder: Path) -> dict[str, Any]:
    result: dict[str, Any] = (await graph.ainvoke({"task": TASK}, context=context(store, folder)))["result"]
    return result


@pytest.fixture
def server() -> Iterator[NotionServer]:
    with NotionServer(token=TOKEN) as running:
        yield running


async def test_a_qbr_whose_notion_page_failed_is_not_done_and_the_rerun_creates_it(
    tmp_path: Path, server: NotionServer
) -> None:
    ws = await open_workspace(tmp_path, server)
    try:
        server.fail(400, "validation_error", method="POST", path_contains="/v1/pages")
        with pytest.raises(Exception, match="validation_error|Injected 400"):
            await run_qbr(ws.store, tmp_path)
        assert server.pages_in(ws.qbr_source) == []
        assert await ws.store.accounts_with_qbr("Q4 2026", "quarterly") == set()  # the scheduler will redo it

        await run_qbr(ws.store, tmp_path)

        assert len(server.pages_in(ws.qbr_source)) == 1 and len(creates(server)) == 2
        assert await ws.store.accounts_with_qbr("Q4 2026", "quarterly") == {"acct-1"}
    finally:
        await ws.store.aclose()


async def test_killed_between_the_notion_page_and_its_audit_row_the_rerun_completes_the_audit(
    tmp_path: Path, server: NotionServer
) -> None:
    ws = await open_workspace(tmp_path, server)
    dying = DyingAudit(ws.inner, "notion_page:qbr")
    ws.store._inner = dying  # type: ignore[assignment]  # the Notion store's local store dies at that audit
    try:
        with pytest.raises(Killed):
            await run_qbr(ws.store, tmp_path)
        assert len(server.pages_in(ws.qbr_source)) == 1
        assert await ws.store.accounts_with_qbr("Q4 2026", "quarterly") == set()

        await run_qbr(ws.store, tmp_path)

        audit = {entry.artifact for entry in await ws.inner.list_audit()}
        assert {"notion_page:qbr", "page:qbr", "draft:qbr"} <= audit
        assert len(server.pages_in(ws.qbr_source)) == 1  # found by its key, not created again
        assert await ws.store.accounts_with_qbr("Q4 2026", "quarterly") == {"acct-1"}
    finally:
        await ws.store.aclose()


async def test_killed_between_the_qbr_row_and_its_audit_row_the_rerun_completes_the_audit(tmp_path: Path) -> None:
    inner = SQLStore(f"sqlite:///{tmp_path / 'store.sqlite'}")
    await inner.upsert_accounts([make_account("acct-1", HEALTHY)])
    dying = DyingAudit(inner, "page:qbr")
    try:
        with pytest.raises(Killed):
            await run_qbr(dying, tmp_path)  # type: ignore[arg-type]
        assert await inner.count("qbr_pages") == 1
        assert await inner.accounts_with_qbr("Q4 2026") == set()

        again = await run_qbr(dying, tmp_path)  # type: ignore[arg-type]

        assert again["created"] is False and await inner.count("qbr_pages") == 1
        [page_audit] = [e for e in await inner.list_audit() if e.artifact == "page:qbr"]
        assert page_audit.detail["page_id"] == again["qbr_page_id"]
        assert await inner.accounts_with_qbr("Q4 2026") == {"acct-1"}
    finally:
        await inner.aclose()
