"""The audit log: every outbound artifact is recorded once, with time, account, task, key and target."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from src.app.context import CSMContext
from src.app.graph.customer_success import build_customer_success_graph
from src.app.graph.sales import build_sales_graph
from src.app.tools.store.sql import SQLStore
from tests.conftest import NOW
from tests.graph.test_task_subgraphs import EXPANSION_READY
from tests.hardening.conftest import csm_env, run_csm
from tests.support.fakes import AT_RISK, Fakes, make_account

customer_success = build_customer_success_graph()
sales = build_sales_graph()
EVERY_KIND = {
    "event:churn_alert",
    "draft:churn_alert",
    "chat:churn_alert",
    "page:churn_alert",
    "draft:qbr",
    "page:qbr",
    "draft:adoption",
    "page:adoption_report",
    "draft:expansion",
    "page:opportunity",
    "handoff",
    "draft:ae_note",
}


async def a_full_day(ctx: CSMContext) -> None:
    for task in (
        {"type": "health_scan"},
        {"type": "generate_qbr", "account_id": "r", "period": "Q4 2026"},
        {"type": "track_feature_adoption", "account_id": "x"},
    ):
        await customer_success.ainvoke({"task": task}, context=ctx)
    expansion = await customer_success.ainvoke({"task": {"type": "check_expansion", "account_id": "x"}}, context=ctx)
    await sales.ainvoke({"handoffs": expansion["handoffs"]}, context=ctx)


async def test_every_outbound_artifact_is_audited_once_with_its_key(fakes: Fakes, ctx: CSMContext) -> None:
    ctx = replace(ctx, sales=None)  # hand-offs travel the graph edge to the Sales graph
    await ctx.store.upsert_accounts([make_account("r", AT_RISK, renews_in_days=15), make_account("x", EXPANSION_READY)])
    await a_full_day(ctx)
    entries = await ctx.store.list_audit(limit=500)
    assert {entry.artifact for entry in entries} == EVERY_KIND
    for entry in entries:
        assert entry.at == NOW and entry.account_id in {"r", "x"} and entry.task_type and entry.target
    keys = [entry.idempotency_key for entry in entries]
    assert len(keys) == len(set(keys))
    drafts = fakes.mail.drafts
    audited_drafts = {e.idempotency_key: e.target for e in entries if e.artifact.startswith("draft:")}
    assert audited_drafts == {key: message.to for key, (message, _, _) in drafts.items()}
    audited_chat = {e.idempotency_key for e in entries if e.artifact.startswith("chat:")}
    assert audited_chat == set(fakes.chat.messages)
    audited_events = {e.idempotency_key for e in entries if e.artifact.startswith("event:")}
    assert audited_events == set(fakes.events.events)

    await a_full_day(ctx)  # a rerun the same day writes nothing new, the audit log included
    assert len(await ctx.store.list_audit(limit=500)) == len(entries)


async def test_the_audit_log_filters_by_account_and_kind(ctx: CSMContext) -> None:
    await ctx.store.upsert_accounts([make_account("r", AT_RISK, renews_in_days=15), make_account("x", EXPANSION_READY)])
    await a_full_day(replace(ctx, sales=None))
    assert isinstance(ctx.store, SQLStore)
    drafts = await ctx.store.list_audit(artifact="draft")
    assert drafts and all(e.artifact.startswith("draft:") for e in drafts)
    assert {e.artifact for e in await ctx.store.list_audit(artifact="draft:qbr")} == {"draft:qbr"}
    assert {e.account_id for e in await ctx.store.list_audit(account_id="x")} == {"x"}
    assert await ctx.store.list_audit(artifact="draft_") == []  # no LIKE wildcards leak through
    assert len(await ctx.store.list_audit(limit=2)) == 2


def test_csm_audit_lists_entries_as_json_and_as_a_table(tmp_path: Path) -> None:
    env = csm_env(tmp_path / "data")
    book = tmp_path / "book.json"
    book.write_text(json.dumps([make_account("r", AT_RISK, renews_in_days=15)]))
    assert run_csm("import", str(book), env=env).returncode == 0
    assert run_csm("scan", "--json", env=env).returncode == 0
    listed = run_csm("audit", "--account", "r", "--kind", "draft", "--limit", "5", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    [entry] = json.loads(listed.stdout)["audit"]
    assert entry["artifact"] == "draft:churn_alert" and entry["account_id"] == "r" and entry["target"]
    assert entry["idempotency_key"].startswith("churn:r:") and entry["task_type"] == "health_scan"
    table = run_csm("audit", env={**env, "COLUMNS": "200"})
    assert "chat:churn_alert" in table.stdout and "nothing was sent" in table.stdout
    bad = run_csm("audit", "--limit", "0", env=env)
    assert bad.returncode == 2 and "--limit" in bad.stderr
