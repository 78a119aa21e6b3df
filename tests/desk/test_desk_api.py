"""The desk over HTTP (Starlette's TestClient): sign-in, CSRF, rep isolation, review actions, the pages."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from src.app.analysis.health import SIGNAL_MAX_POINTS
from src.app.config import CSMSettings
from src.app.data.sample_book import load_sample_book
from src.app.desk.app import create_app
from src.app.tools.store.sql import SQLStore
from tests.conftest import NOW
from tests.desk.conftest import LEAD, REP


@pytest.fixture
def client(desk_settings: CSMSettings) -> Iterator[TestClient]:
    with TestClient(create_app(desk_settings), base_url="http://127.0.0.1") as test_client:
        yield test_client


def form_token(client: TestClient, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text
    return match.group(1)


def sign_in(client: TestClient, who: tuple[str, str]) -> str:
    token = form_token(client, "/login")
    response = client.post(
        "/login", data={"email": who[0], "password": who[1], "csrf_token": token}, follow_redirects=False
    )
    assert response.status_code == 303, response.text
    csrf: str = client.get("/api/session").json()["csrf"]
    return csrf


def test_nothing_answers_without_a_session(client: TestClient) -> None:
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"
    assert client.get("/drafts", follow_redirects=False).status_code == 303
    assert client.get("/api/book").status_code == 401
    assert client.get("/api/drafts").status_code == 401
    assert client.post("/api/drafts/x/approve").status_code in (401, 403)


def test_sign_in_sets_an_httponly_samesite_cookie_and_failures_are_limited_and_audited(client: TestClient) -> None:
    token = form_token(client, "/login")
    for _ in range(5):
        wrong = client.post("/login", data={"email": LEAD[0], "password": "nope-nope", "csrf_token": token})
        assert wrong.status_code == 401
    blocked = client.post("/login", data={"email": LEAD[0], "password": LEAD[1], "csrf_token": token})
    assert blocked.status_code == 429
    audit = client.app.state.desk.records.store  # type: ignore[attr-defined]
    import asyncio

    entries = asyncio.run(audit.list_audit(artifact="signin", limit=20))
    assert sum(e.artifact == "signin:failed" for e in entries) == 5 and any(
        e.artifact == "signin:blocked" for e in entries
    )


def test_cookie_flags(client: TestClient) -> None:
    token = form_token(client, "/login")
    response = client.post(
        "/login", data={"email": LEAD[0], "password": LEAD[1], "csrf_token": token}, follow_redirects=False
    )
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "csm_desk=" in cookie


def test_a_post_without_the_csrf_token_is_refused(client: TestClient) -> None:
    assert client.post("/login", data={"email": LEAD[0], "password": LEAD[1]}).status_code == 403
    csrf = sign_in(client, LEAD)
    draft_id = client.get("/api/drafts?status=pending").json()["drafts"][0]["draft_id"]
    assert client.post(f"/api/drafts/{draft_id}/approve").status_code == 403
    assert client.post(f"/api/drafts/{draft_id}/approve", headers={"X-CSRF-Token": "wrong"}).status_code == 403
    assert client.post(f"/drafts/{draft_id}/approve", data={"csrf_token": "wrong"}).status_code == 403
    assert client.get(f"/api/drafts/{draft_id}").json()["status"] == "pending"
    assert client.post(f"/api/drafts/{draft_id}/approve", headers={"X-CSRF-Token": csrf}).json()["status"] == "approved"


def test_a_rep_sees_and_acts_only_on_their_own_accounts(client: TestClient) -> None:
    lead_csrf = sign_in(client, LEAD)
    every = client.get("/api/drafts").json()["drafts"]
    book = client.get("/api/book").json()
    assert book["total"] > 0
    client.post("/logout", data={"csrf_token": lead_csrf})
    csrf = sign_in(client, REP)
    mine = client.get("/api/drafts").json()["drafts"]
    theirs = [d for d in every if d["to"] != REP[0]]
    assert mine and theirs and all(d["to"] == REP[0] for d in mine)
    other = theirs[0]
    assert client.get(f"/api/drafts/{other['draft_id']}").status_code == 404
    assert client.get(f"/drafts/{other['draft_id']}").status_code == 404
    assert client.get(f"/accounts/{other['account_id']}").status_code == 404
    assert client.get(f"/api/accounts/{other['account_id']}").status_code == 404
    refused = client.post(f"/api/drafts/{other['draft_id']}/approve", headers={"X-CSRF-Token": csrf})
    assert refused.status_code == 404
    rep_book = client.get("/api/book?owner=lead@example.com").json()
    assert rep_book["total"] < book["total"] and all(r["rep_email"] == REP[0] for r in rep_book["riskiest"])
    assert client.get(f"/accounts/{mine[0]['account_id']}").status_code == 200


def test_transitions_over_the_api_and_the_forms(client: TestClient, desk_settings: CSMSettings) -> None:
    csrf = sign_in(client, LEAD)
    first, second, third, fourth = [
        d["draft_id"] for d in client.get("/api/drafts?status=pending").json()["drafts"][:4]
    ]
    headers = {"X-CSRF-Token": csrf}
    assert client.post(f"/api/drafts/{first}/approve", headers=headers).json()["delivered"] is True
    assert client.post(f"/api/drafts/{first}/approve", headers=headers).json()["changed"] is False
    edited = client.post(
        f"/api/drafts/{second}/edit", headers=headers, json={"subject": "New subject", "body": "New body"}
    )
    assert edited.json()["status"] == "edited"
    rejected = client.post(f"/api/drafts/{third}/reject", headers=headers, json={"reason": "already handled"})
    assert rejected.json()["status"] == "rejected"
    assert client.post(f"/api/drafts/{third}/approve", headers=headers).status_code == 409
    page = client.post(f"/drafts/{fourth}/reject", data={"csrf_token": csrf, "reason": "false alarm", "note": ""})
    assert page.status_code == 200 and "Rejected" in page.text
    outbox = sorted(p.stem for p in (desk_settings.data_dir / "outbox" / "drafts").glob("*.eml"))
    assert outbox == sorted([first, second])


def test_bulk_approve_and_every_page_renders(client: TestClient) -> None:
    csrf = sign_in(client, LEAD)
    ids = [d["draft_id"] for d in client.get("/api/drafts?status=pending").json()["drafts"][:2]]
    done = client.post("/drafts", data={"csrf_token": csrf, "action": "approve", "ids": ids})
    assert done.status_code == 200 and "Approved 2 drafts" in done.text
    book = client.get("/")
    assert book.status_code == 200 and "Riskiest accounts" in book.text and "ARR at risk" in book.text
    account_id = client.get("/api/book").json()["riskiest"][0]["account_id"]
    account = client.get(f"/accounts/{account_id}")
    assert account.status_code == 200 and "<svg" in account.text and "Timeline" in account.text
    for path in (
        "/drafts",
        "/drafts?status=approved",
        f"/drafts/{ids[0]}",
        "/qbrs",
        "/opportunities",
        "/?rag=RED&renewal=90&q=a",
    ):
        assert client.get(path).status_code == 200, path


def test_each_signal_shows_its_source_and_time(client: TestClient, desk_settings: CSMSettings) -> None:
    sign_in(client, LEAD)
    account_id = "acct-0001"
    view = client.get(f"/api/accounts/{account_id}").json()
    record = next(r for r in load_sample_book(today=NOW.date()) if r["account_id"] == account_id)
    source = view["source"]
    assert (
        source["store"] == f"SQLite {desk_settings.data_dir / 'csm.sqlite'}" and source["column"] == "accounts.record"
    )
    assert source["record_updated_at"] <= source["scanned_at"] and not source["changed_since_scan"]
    signals = {s["signal"]: s["source"] for s in view["signals"]}
    assert set(signals) >= set(SIGNAL_MAX_POINTS)
    assert all(s["updated_at"] == source["record_updated_at"] and s["known"] for s in signals.values())
    fields = {key: [(f["field"], f["value"], f["derives"]) for f in s["fields"]] for key, s in signals.items()}
    assert fields["support_tickets"] == [
        ("avg_ticket_sentiment", record["avg_ticket_sentiment"], None),
        ("open_ticket_count", record["open_ticket_count"], None),
    ]
    assert fields["days_to_renewal"] == [("contract_end_date", record["contract_end_date"], "days_to_renewal")]
    assert fields["nps_score"] == [("nps_score", record["nps_score"], None)]
    page = client.get(f"/accounts/{account_id}").text
    assert "accounts.record" in page and "<code>open_ticket_count</code> = 0" in page and "written after" not in page

    asyncio.run(_rewrite(desk_settings, {**record, "nps_score": 2}))
    changed = client.get(f"/api/accounts/{account_id}").json()
    assert changed["source"]["changed_since_scan"] and changed["source"]["record_updated_at"] >= source["scanned_at"]
    assert next(s for s in changed["signals"] if s["signal"] == "nps_score")["source"]["fields"][0]["value"] == 2
    assert "written after the last scan" in client.get(f"/accounts/{account_id}").text


async def _rewrite(settings: CSMSettings, record: dict[str, Any]) -> None:
    store = SQLStore(settings.resolved_database_url)
    await store.upsert_accounts([record])
    await store.aclose()
