"""The review desk in a real browser: sign in as lead and rep, book, account chart, approve, edit, reject."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import CHROMIUM
from tests.desk.seeding import run_apart

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="no /usr/bin/chromium: `apt-get install -y chromium` to run the desk's browser tests"
)
LEAD = ("lead@example.com", "lead-password")
REP = ("priya.patel@example.com", "rep-password")


def shoot(page: Page, tmp_path: Path, name: str) -> None:
    """A full-page screenshot in tmp_path (and in $CSM_SCREENSHOT_DIR when set)."""
    page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
    folder = os.environ.get("CSM_SCREENSHOT_DIR")
    if folder:
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def sign_in(page: Page, base: str, who: tuple[str, str]) -> None:
    page.goto(base + "/")
    expect(page).to_have_url(re.compile(r"/login$"))
    page.get_by_label("Email").fill(who[0])
    page.get_by_label("Password").fill(who[1])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Book")


def pending_ids(page: Page) -> list[str]:
    return [str(v) for v in page.locator("input[name=ids]").evaluate_all("els => els.map(e => e.value)")]


def run(coro: Any) -> Any:
    return run_apart(coro)


def test_a_lead_reviews_drafts_and_the_store_audit_and_outbox_agree(
    live_server: str, desk_data: Any, page: Page, tmp_path: Path
) -> None:
    page.set_viewport_size({"width": 1360, "height": 900})
    sign_in(page, live_server, LEAD)
    expect(page.get_by_text("Riskiest accounts")).to_be_visible()
    expect(page.get_by_text("ARR at risk")).to_be_visible()
    shoot(page, tmp_path, "desk-book")
    page.goto(live_server + "/drafts")
    first, second, third = pending_ids(page)[:3]
    page.locator("table a[href^='/accounts/']").first.click()
    expect(page.locator("#score-chart svg")).to_be_visible()
    expect(page.locator(".timeline")).to_contain_text("draft")
    expect(page.locator(".signals")).to_contain_text("accounts.record")  # each signal's field, value and time
    expect(page.locator(".signals td.source").first).to_contain_text("=")
    shoot(page, tmp_path, "desk-account")

    page.goto(f"{live_server}/drafts/{first}")
    page.locator("#approve").click()
    expect(page.locator(".flash")).to_contain_text("Approved")
    page.goto(f"{live_server}/drafts/{second}")
    shoot(page, tmp_path, "desk-draft")
    page.locator("#subject").fill("Please call them this week")
    page.locator("#body").fill("Hi,\n\nThe usage drop is real; please call the champion this week.")
    page.locator("#save-approve").click()
    expect(page.locator(".flash")).to_contain_text("Edited and approved")
    page.goto(f"{live_server}/drafts/{third}")
    page.locator("#reason").select_option("false alarm")
    page.locator("#note").fill("seasonal dip")
    page.locator("#reject").click()
    expect(page.locator(".flash")).to_contain_text("Rejected")
    page.goto(live_server + "/drafts?status=all")
    shoot(page, tmp_path, "desk-queue")

    from src.app.desk.review import open_review

    async def check() -> tuple[Any, Any, Any, Any]:
        async with open_review(desk_data) as review:
            drafts = [await review.records.draft(i) for i in (first, second, third)]
            audit = await review.records.store.list_audit(artifact="review", limit=20)
            feedback = await review.records.feedback()
        return drafts, audit, feedback, None

    (approved, edited, rejected), audit, feedback, _ = run(check())
    assert approved.status == "approved" and approved.reviewed_by == LEAD[0]
    assert edited.status == "edited" and edited.subject == "Please call them this week"
    assert rejected.status == "rejected" and rejected.reason == "false alarm: seasonal dip"
    assert {(e.artifact, e.detail["draft_id"]) for e in audit} >= {
        ("review:approved", first),
        ("review:edited", second),
        ("review:rejected", third),
    }
    assert [(f.draft_id, f.label) for f in feedback if f.draft_id == third] == [(third, "false_alarm")]
    outbox = desk_data.data_dir / "outbox" / "drafts"
    assert {p.stem for p in outbox.glob("*.eml")} == {first, second}
    assert "please call the champion" in (outbox / f"{second}.eml").read_text()


def test_a_rep_sees_only_their_accounts_and_cannot_open_others_by_url(
    live_server: str, page: Page, tmp_path: Path
) -> None:
    sign_in(page, live_server, LEAD)
    page.goto(live_server + "/?owner=jordan.lee%40example.com")
    other_account = page.locator("table a[href^='/accounts/']").first.get_attribute("href")
    page.goto(live_server + "/drafts?status=all")
    rows = page.locator("tr", has=page.locator("td.small", has_text="jordan.lee@example.com"))
    other_draft = rows.first.locator("a[href^='/drafts/']").get_attribute("href")
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, live_server, REP)
    expect(page.get_by_role("heading", level=1)).to_contain_text(REP[0])
    owners = page.locator("table td.small").all_inner_texts()
    assert owners and {o for o in owners if "@" in o} == {REP[0]}
    shoot(page, tmp_path, "desk-rep-book")
    for path in (other_account, other_draft):
        response = page.goto(live_server + str(path))
        assert response is not None and response.status == 404, path


def test_a_post_without_the_csrf_token_is_refused(live_server: str, page: Page) -> None:
    sign_in(page, live_server, LEAD)
    page.goto(live_server + "/drafts")
    draft_id = pending_ids(page)[0]
    refused = page.request.post(f"{live_server}/drafts/{draft_id}/approve", form={"csrf_token": "forged"})
    assert refused.status == 403
    missing = page.request.post(f"{live_server}/api/drafts/{draft_id}/approve")
    assert missing.status == 403
    page.goto(f"{live_server}/drafts/{draft_id}")
    expect(page.locator(".status").first).to_have_text("pending")
