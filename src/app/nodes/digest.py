"""The daily digest: one draft and one chat message per owner listing their at-risk accounts not alerted today."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from datetime import date, timedelta
from typing import Any

from pydantic import BaseModel

from src.app.analysis.health import weakest_signals
from src.app.analysis.signals import AccountDataError, days_until, parse_identity
from src.app.context import CSMContext
from src.app.documents.periods import local_day, score_as_of, score_before
from src.app.documents.wording import (
    describe_change,
    fmt_date,
    fmt_money,
    fmt_score,
    plural,
    score_delta,
    signal_line,
)
from src.app.nodes.delivery import audit
from src.app.nodes.render import Section, escape_chat, greeting, render_html, render_text
from src.app.schemas import AccountRecord, ChatMessage, CSMHealthScore, EmailMessage
from src.app.tools.store import score_history

DIGEST_RAGS = ("RED", "AMBER")
"""Scores that put an account in its owner's digest."""
RAG_WEIGHT = {"RED": 1.0, "AMBER": 0.5}
"""Share of an account's ARR counted as at risk by RAG (the digest's sort order)."""
MOVER_POINTS = 5
"""A change since yesterday of at least this many points makes an account a mover."""
DIGEST_ROWS = 15
"""Accounts listed in full in one digest; the rest are counted."""
DIGEST_CHAT_SPACE = "#cs-digest"


class DigestRow(BaseModel):
    """One account in a digest."""

    account: AccountRecord
    score: CSMHealthScore
    week_change: int | None
    renewal: date | None
    at_risk: float


async def send_daily_digests(
    ctx: CSMContext, *, alerted: Collection[str], held_back: int, task_type: str = "health_scan"
) -> dict[str, Any]:
    """Draft each owner's digest once per day (key `digest:<owner>:<date>`); returns counts by outcome."""
    now, tz = ctx.clock(), ctx.settings.tz
    today = local_day(now, tz)
    accounts = [_identity(record) for record in await ctx.store.load_accounts()]
    by_id = {account.account_id: account for account in accounts if account is not None}
    latest = await ctx.store.latest_scores(list(by_id))
    history = await score_history(ctx.store, list(latest), since=now - timedelta(days=8))
    owners: dict[str, list[DigestRow]] = defaultdict(list)
    movers: dict[str, list[str]] = defaultdict(list)
    for account_id, score in latest.items():
        account = by_id[account_id]
        owner = (account.rep_email or "").strip().lower()
        if not owner:
            continue
        past = history.get(account_id, [])
        yesterday = score_before(past, today, tz)
        if yesterday is not None and abs(score_delta(score.score, yesterday.score)) >= MOVER_POINTS:
            movers[owner].append(mover_line(account, score, yesterday))
        if score.rag not in DIGEST_RAGS or account_id in alerted:
            continue
        week = score_as_of([s for s in past if s.computed_at < score.computed_at], today - timedelta(days=7), tz)
        end = account.contract_end_date
        owners[owner].append(
            DigestRow(
                account=account,
                score=score,
                week_change=None if week is None else score_delta(score.score, week.score),
                renewal=None if end is None else today + timedelta(days=days_until(end, now=now, tz=tz) or 0),
                at_risk=account.arr * RAG_WEIGHT[score.rag],
            )
        )
    sent = {"digests": 0, "digests_existing": 0}
    for owner, rows in sorted(owners.items()):
        rows.sort(key=lambda row: (-row.at_risk, row.account.account_id))
        created = await _send(ctx, owner, today, rows, movers.get(owner, []), held_back, task_type)
        sent["digests" if created else "digests_existing"] += 1
    return sent


def digest_key(owner: str, day: date) -> str:
    """One digest per owner per day."""
    return f"digest:{owner}:{day.isoformat()}"


def digest_sections(rows: Sequence[DigestRow], movers: Sequence[str], held_back: int, cap: int) -> list[Section]:
    """The digest body: accounts by ARR at risk (score, trend, renewal, top signals), movers, the cap's effect."""
    lines = [_row_line(row) for row in rows[:DIGEST_ROWS]]
    if len(rows) > DIGEST_ROWS:
        lines.append(f"{plural(len(rows) - DIGEST_ROWS, 'more account')} not listed here.")
    note = (
        ["No account has a stored score from a week ago yet, so the 7-day trend starts next week."]
        if rows and all(row.week_change is None for row in rows)
        else []
    )
    sections = [Section(title="Accounts that need attention, most ARR at risk first", paragraphs=note, bullets=lines)]
    if movers:
        sections.append(Section(title="Movers since yesterday", bullets=list(movers)))
    held = (
        f"Today's scan held back {plural(held_back, 'alert')}: at most {plural(cap, 'alert')} go out per scan "
        "(CSM_MAX_ALERTS_PER_SCAN), so those accounts appear here instead."
        if held_back
        else f"The cap of {plural(cap, 'alert')} per scan (CSM_MAX_ALERTS_PER_SCAN) held back no alert today."
    )
    return [*sections, Section(title="About alerts", paragraphs=[held])]


DIGEST_WHY = "You own these accounts; each is Amber or Red today and was not alerted on its own."
"""The one line under the digest's greeting that says why the owner gets it."""


def digest_heading(today: date, rows: Sequence[DigestRow]) -> str:
    """The digest's subject: the day, how many accounts and the ARR at risk."""
    at_risk = sum(row.at_risk for row in rows)
    return f"Daily digest, {fmt_date(today)}: {plural(len(rows), 'account')} to look at ({fmt_money(at_risk)} at risk)"


def mover_line(account: AccountRecord, score: CSMHealthScore, yesterday: CSMHealthScore) -> str:
    """One mover: "Acme: down 6 points since yesterday, now 48"."""
    change = describe_change(score_delta(score.score, yesterday.score))
    return f"{account.name}: {change} since yesterday, now {fmt_score(score.score)}"


def digest_chat_text(heading: str, owner: str, rows: Sequence[DigestRow], held_back: int) -> str:
    """The digest's chat message: the subject, the top three accounts and what the alert cap held back."""
    top = "; ".join(f"{row.account.name} {fmt_score(row.score.score, out_of=True)}" for row in rows[:3])
    text = f"*{escape_chat(heading)}* for {escape_chat(owner)}. Top: {escape_chat(top)}."
    if held_back:
        text += f" The alert cap held back {plural(held_back, 'alert')} today."
    return text


def _at_risk(row: DigestRow) -> str:
    """The ARR at risk: "$104,600 ARR at risk" when all of it is, else "$7,100 of $14,200 ARR at risk"."""
    if row.at_risk >= row.account.arr:
        return f"{fmt_money(row.account.arr)} ARR at risk"
    return f"{fmt_money(row.at_risk)} of {fmt_money(row.account.arr)} ARR at risk"


def _row_line(row: DigestRow) -> str:
    trend = "" if row.week_change is None else f", {describe_change(row.week_change)} in 7 days"
    renewal = "no renewal date" if row.renewal is None else f"renews {fmt_date(row.renewal)}"
    signals = [signal_line(key, points, best) for key, points, best in weakest_signals(row.score, limit=2)]
    return (
        f"{row.account.name} ({_at_risk(row)}): {fmt_score(row.score.score, out_of=True)} "
        f"{row.score.rag.capitalize()}{trend}, {renewal}. Weakest: {'; '.join(signals) or 'none'}."
    )


async def _send(
    ctx: CSMContext,
    owner: str,
    today: date,
    rows: Sequence[DigestRow],
    movers: Sequence[str],
    held_back: int,
    task_type: str,
) -> bool:
    key = digest_key(owner, today)
    cap = ctx.settings.max_alerts_per_scan
    heading, why = digest_heading(today, rows), DIGEST_WHY
    sections = digest_sections(rows, movers, held_back, cap)
    intro = [greeting(owner), why]
    message = EmailMessage(
        to=owner,
        subject=heading,
        body_html=render_html(heading, sections, intro=intro),
        body_text=render_text(heading, sections, intro=intro),
    )
    draft = await ctx.mail.create_draft(message, idempotency_key=f"{key}:draft", kind="digest")
    await audit(ctx, artifact="draft:digest", target=owner, key=f"{key}:draft", account_id=None, task_type=task_type)
    text = digest_chat_text(heading, owner, rows, held_back)
    await ctx.chat.post(ChatMessage(space_name=DIGEST_CHAT_SPACE, text=text), idempotency_key=f"{key}:chat")
    await audit(
        ctx,
        artifact="chat:digest",
        target=f"chat:{DIGEST_CHAT_SPACE}",
        key=f"{key}:chat",
        account_id=None,
        task_type=task_type,
    )
    return draft.created


def _identity(record: Mapping[str, Any]) -> AccountRecord | None:
    try:
        return parse_identity(record)
    except AccountDataError:
        return None
