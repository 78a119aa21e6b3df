"""A health scan in its own process, for the crash-safety test: `python -m tests.hardening.crash_worker DIR [--slow]`.

It runs the real graph on the real embedded adapters (SQLite store, `.eml` outbox, chat outbox) at a fixed
clock, so every run is the same day. With `--slow` it announces each step on stdout ("llm", "drafted <id>")
and pauses after it, so the test can SIGKILL it at a known point.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from src.app.analysis.health import CSMHealthScorer
from src.app.context import CSMContext
from src.app.graph.customer_success import build_customer_success_graph
from src.app.schemas import DraftResult, EmailMessage
from src.app.tools.chat.outbox import LocalChatOutbox
from src.app.tools.events.in_process import InProcessEventBus
from src.app.tools.mail.outbox import LocalOutbox
from src.app.tools.store.sql import SQLStore
from tests.conftest import NOW
from tests.hardening.conftest import offline_settings
from tests.support.fakes import AT_RISK, DEFAULT_REPLIES, HEALTHY, ScriptedLLM, make_account

BOOK_SIZE = 240
PAUSE_S = 0.4


def book() -> list[dict[str, Any]]:
    """A book with many at-risk accounts (more than the alert cap) and two records that cannot be scored."""
    records = [
        make_account(f"acct-{i:03d}", AT_RISK if i % 3 == 0 else HEALTHY, renews_in_days=(i * 7) % 400 - 20)
        for i in range(BOOK_SIZE)
    ]
    records += [
        make_account("bad-adoption", {**HEALTHY, "feature_adoption_rate": 65}),
        make_account("bad-trend", {**HEALTHY, "usage_trend": "sideways"}),
    ]
    return records


class AnnouncingOutbox:
    """The local outbox, announcing each draft and pausing after it."""

    def __init__(self, outbox: LocalOutbox, *, slow: bool) -> None:
        self._outbox = outbox
        self._slow = slow

    async def create_draft(
        self, message: EmailMessage, *, idempotency_key: str, account_id: str | None = None, kind: str = "email"
    ) -> DraftResult:
        draft = await self._outbox.create_draft(
            message, idempotency_key=idempotency_key, account_id=account_id, kind=kind
        )
        announce(f"drafted {account_id}", slow=self._slow)
        return draft


def announce(step: str, *, slow: bool) -> None:
    print(step, flush=True)
    if slow:
        time.sleep(PAUSE_S)


async def main(data_dir: Path, *, slow: bool) -> None:
    settings = offline_settings(data_dir)
    store = SQLStore(settings.resolved_database_url)

    def narrative(_: list[dict[str, str]]) -> str:
        announce("llm", slow=slow)
        return json.dumps(DEFAULT_REPLIES["ChurnNarrative"])

    ctx = CSMContext(
        settings=settings,
        store=store,
        llm=ScriptedLLM({"ChurnNarrative": [narrative]}),
        mail=AnnouncingOutbox(LocalOutbox(store, data_dir / "outbox" / "drafts"), slow=slow),
        chat=LocalChatOutbox(data_dir / "outbox" / "chat"),
        events=InProcessEventBus(),
        scorer=CSMHealthScorer(),
        clock=lambda: NOW,
    )
    await store.upsert_accounts(book())
    result = (await build_customer_success_graph().ainvoke({"task": {"type": "health_scan"}}, context=ctx))["result"]
    await store.aclose()
    print("done " + json.dumps({"scored": len(result["health_scores"]), "alerts": result["alerts_dispatched"]}))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), slow="--slow" in sys.argv[2:]))
