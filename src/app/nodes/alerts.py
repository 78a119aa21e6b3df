"""Churn alerts: pick which accounts to alert (severity, cap, cooldown) and dispatch on the four channels."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import structlog

from src.app.analysis.health import SIGNAL_MAX_POINTS, weakest_signals
from src.app.config import redact_secrets
from src.app.context import CSMContext
from src.app.documents.periods import local_day, score_as_of
from src.app.documents.wording import (
    describe_change,
    fmt_date,
    fmt_score,
    plural,
    rounded_score,
    score_delta,
    signal_line,
    strength_word,
)
from src.app.nodes.delivery import audit, check_recipient
from src.app.nodes.outbox import deliver
from src.app.nodes.render import Section, escape_chat, greeting, render_html, render_text
from src.app.schemas import (
    AccountRecord,
    ChatMessage,
    ChurnNarrative,
    CSMAlertResult,
    CSMHealthScore,
    EmailMessage,
    RiskOf,
)
from src.app.tools.store.sql_review import recent_false_alarms

log = structlog.get_logger(__name__)

CHURN_STREAM = "churn_alerts"
ALERT_TYPE = "csm_churn_alert"
DEFAULT_CHAT_SPACE = "#cs-alerts"
AUDIT_ARTIFACTS = {
    "event_bus": ("event:churn_alert", ":event"),
    "email_alert": ("draft:churn_alert", ":email"),
    "chat_alert": ("chat:churn_alert", ":chat"),
    "notion": ("page:churn_alert", ""),
}
"""Per alert channel: the audit log's artifact kind and the suffix of the artifact's own idempotency key."""
AlertStatus = Literal["due", "cooldown", "done_today"]


def risk_state(score: RiskOf) -> str:
    """The risk state an alert is about; the cooldown suppresses repeats of the same state."""
    return f"{score.rag}/{score.churn_risk_level}"


def alert_key(ctx: CSMContext, score: RiskOf) -> str:
    """The idempotency key of an account's churn alert: one per account, risk state and day."""
    return f"churn:{score.account_id}:{risk_state(score)}:{ctx.clock().date().isoformat()}"


async def alert_statuses(ctx: CSMContext, scores: Sequence[RiskOf]) -> dict[str, AlertStatus]:
    """Per account, whether to alert: "done_today", "cooldown" or "due"; two reads, however many scores.

    "done_today": already raised today. "cooldown": the same risk state was alerted within the cooldown, or a
    person rejected its alert for that state as a false alarm within it.
    """
    ids = [score.account_id for score in scores]
    last_alerts = await ctx.store.last_alerts(ids)
    since = ctx.clock() - timedelta(days=ctx.settings.alert_cooldown_days)
    false_alarms = await recent_false_alarms(ctx.store, ids, since=since)
    statuses: dict[str, AlertStatus] = {}
    for score in scores:
        last, state = last_alerts.get(score.account_id), risk_state(score)
        if last is not None and last.idempotency_key == alert_key(ctx, score):
            statuses[score.account_id] = "done_today"
        elif state in false_alarms.get(score.account_id, set()):
            statuses[score.account_id] = "cooldown"
        elif last is None or last.risk_state != state:
            statuses[score.account_id] = "due"
        else:
            statuses[score.account_id] = "cooldown" if last.alerted_at > since else "due"
    return statuses


TREND_DAYS = (7, 30)
"""An alert compares the score with the stored scores this many days ago."""
USERS_DROP_SHOWN = -0.25
"""A fall in active users at least this large (as a ratio) is called out in every alert."""


def alert_trend(
    history: Sequence[CSMHealthScore], score: CSMHealthScore, usage: Sequence[int], *, tz: ZoneInfo
) -> dict[str, Any]:
    """The alert's trend facts: the score now, 7 and 30 days ago (stored history), and the change in active users."""
    today = local_day(score.computed_at, tz)
    trend: dict[str, Any] = {"score_now": rounded_score(score.score), "days_compared": list(TREND_DAYS)}
    for days in TREND_DAYS:
        then = score_as_of([s for s in history if s.computed_at < score.computed_at], today - timedelta(days), tz)
        trend[f"score_{days}_days_ago"] = None if then is None else rounded_score(then.score)
        trend[f"change_{days}_days"] = None if then is None else score_delta(score.score, then.score)
        trend[f"date_{days}_days_ago"] = None if then is None else fmt_date(local_day(then.computed_at, tz))
    if len(usage) >= 2 and usage[0]:
        trend |= {"active_users_then": usage[0], "active_users_now": usage[-1], "months": len(usage) - 1}
        trend["active_users_change_pct"] = round((usage[-1] - usage[0]) / usage[0] * 100)
    return trend


def trend_lines(trend: Mapping[str, Any]) -> list[str]:
    """The trend in sentences: "Down 24 points in 7 days (from 86 on 25 Nov 2026)."; a large fall in users."""
    lines = []
    for days in TREND_DAYS:
        change = trend.get(f"change_{days}_days")
        if change is None:
            lines.append(f"No stored score from {plural(days, 'day')} ago to compare with.")
            continue
        then, on = trend[f"score_{days}_days_ago"], trend[f"date_{days}_days_ago"]
        lines.append(f"{describe_change(change).capitalize()} in {plural(days, 'day')} (from {then} on {on}).")
    pct = trend.get("active_users_change_pct")
    if pct is not None and pct <= USERS_DROP_SHOWN * 100:
        lines.append(
            f"Active users fell {-pct}% in {plural(trend['months'], 'month')} "
            f"(from {trend['active_users_then']:,} to {trend['active_users_now']:,})."
        )
    return lines


def fallback_narrative(account: AccountRecord, score: CSMHealthScore) -> ChurnNarrative:
    """A deterministic narrative from the score alone, used when the LLM could not write one."""
    trigger = {"contract_proximity": "the renewal being close", "behavioral": "falling usage and logins"}.get(
        score.churn_triggered_by or "", "overall health"
    )
    return ChurnNarrative(
        churn_narrative=(
            f"{account.name} scored {fmt_score(score.score, out_of=True)} ({score.rag.capitalize()}); churn risk is "
            f"{score.churn_risk_level}, driven by {trigger}. The narrative could not be generated; "
            "see the signals below."
        ),
        recommended_actions=["Review the signal breakdown and contact the account's champion."],
    )


async def dispatch_churn_alert(
    ctx: CSMContext,
    *,
    account: AccountRecord,
    score: CSMHealthScore,
    narrative: ChurnNarrative,
    task_type: str,
    trend: Mapping[str, Any] | None = None,
) -> CSMAlertResult:
    """Alert on the system of record, the event bus, an email draft and chat; each channel independently.

    `trend` (see `alert_trend`) puts the change over 7 and 30 days and any large fall in active users in the
    email and chat text.
    """
    trend = trend or {}
    key = alert_key(ctx, score)
    result = CSMAlertResult(account_id=account.account_id)
    # The mark on the record goes last: it starts the cooldown, so a run killed before it redoes the alert.
    # Events, drafts and chat messages go through the outbox: recorded as pending before the remote write, done
    # only after it, and retried by the next run (`deliver_pending`) when it failed, so a channel that is down
    # loses nothing.
    channels: dict[str, Callable[[str], Awaitable[str | None]]] = {
        "event_bus": lambda artifact_key: _publish_event(ctx, account, score, narrative, artifact_key, task_type),
        "email_alert": lambda artifact_key: _draft_email(
            ctx, account, score, narrative, trend, artifact_key, task_type
        ),
        "chat_alert": lambda artifact_key: _post_chat(ctx, account, score, narrative, trend, artifact_key, task_type),
        "notion": lambda artifact_key: _mark_record(ctx, score, artifact_key, task_type),
    }
    for channel, send in channels.items():
        _, suffix = AUDIT_ARTIFACTS[channel]
        try:
            artifact_id = await send(key + suffix)
        except Exception as error:  # noqa: BLE001 - one channel failing must not stop the others
            message = redact_secrets(f"{type(error).__name__}: {error}", ctx.settings)
            log.warning("alert_channel_failed", account_id=account.account_id, channel=channel, error=message)
            result.errors[channel] = message + (" (pending: retried by the next run)" if channel != "notion" else "")
            continue
        result.channels[channel] = True
        if channel == "email_alert":
            result.draft_id = artifact_id
    result.alerts_sent = sum(result.channels.values())
    return result


async def _mark_record(ctx: CSMContext, score: CSMHealthScore, key: str, task_type: str) -> str | None:
    await ctx.store.record_alert(score.account_id, risk_state(score), idempotency_key=key, at=ctx.clock())
    artifact, _ = AUDIT_ARTIFACTS["notion"]
    detail: dict[str, Any] = {"artifact_id": None}
    await audit(
        ctx,
        artifact=artifact,
        target="store:alerts",
        key=key,
        account_id=score.account_id,
        task_type=task_type,
        detail=detail,
    )
    return None


async def _publish_event(
    ctx: CSMContext,
    account: AccountRecord,
    score: CSMHealthScore,
    narrative: ChurnNarrative,
    key: str,
    task_type: str,
) -> str | None:
    event = {
        "alert_type": ALERT_TYPE,
        "account_id": account.account_id,
        "account_name": account.name,
        "score": score.score,
        "rag": score.rag,
        "churn_risk_level": score.churn_risk_level,
        "churn_triggered_by": score.churn_triggered_by,
        "churn_narrative": narrative.churn_narrative,
        "computed_at": score.computed_at.isoformat(),
    }
    payload = {"stream": CHURN_STREAM, "event": event}
    artifact, _ = AUDIT_ARTIFACTS["event_bus"]
    return await deliver(
        ctx,
        channel="event",
        key=key,
        artifact=artifact,
        payload=payload,
        account_id=account.account_id,
        task_type=task_type,
    )


def alert_subject(account: AccountRecord, score: CSMHealthScore) -> str:
    """The alert's subject; its score is written exactly as the body writes it."""
    shown = f"{fmt_score(score.score, out_of=True)}, {score.rag.capitalize()}"
    return f"Churn risk {score.churn_risk_level}: {account.name} ({shown})"


def alert_sections(score: CSMHealthScore, narrative: ChurnNarrative, trend: Mapping[str, Any]) -> list[Section]:
    """The alert email's body: score and trend, what is happening, actions, the signals that cost points."""
    shown = f"{fmt_score(score.score, out_of=True)} ({score.rag.capitalize()})"
    headline = f"Health score {shown}, churn risk {score.churn_risk_level}."
    weakest = [
        f"{signal_line(key, points, best)} ({strength_word(points, best)})"
        for key, points, best in weakest_signals(score)
    ]
    adjustments = [
        signal_line(key, points)
        for key, points in score.signal_breakdown.items()
        if key not in SIGNAL_MAX_POINTS and points < 0
    ]
    return [
        Section(title="Score and trend", paragraphs=[headline], bullets=trend_lines(trend)),
        Section(title="What is happening", paragraphs=[narrative.churn_narrative]),
        Section(title="Recommended actions", bullets=narrative.recommended_actions),
        Section(title="Signals that cost the most points", bullets=weakest + adjustments),
    ]


async def _draft_email(
    ctx: CSMContext,
    account: AccountRecord,
    score: CSMHealthScore,
    narrative: ChurnNarrative,
    trend: Mapping[str, Any],
    key: str,
    task_type: str,
) -> str | None:
    to = check_recipient(ctx, account)
    heading = alert_subject(account, score)
    sections = alert_sections(score, narrative, trend)
    why = f"You own {account.name}, and today's health scan found it at {score.churn_risk_level} churn risk."
    intro = [greeting(to), why]
    message = EmailMessage(
        to=to,
        subject=heading,
        body_html=render_html(heading, sections, intro=intro),
        body_text=render_text(heading, sections, intro=intro),
    )
    artifact, _ = AUDIT_ARTIFACTS["email_alert"]
    payload = {"message": message.model_dump(mode="json"), "kind": "churn_alert"}
    return await deliver(
        ctx,
        channel="mail",
        key=key,
        artifact=artifact,
        payload=payload,
        account_id=account.account_id,
        task_type=task_type,
    )


def alert_chat_text(
    account: AccountRecord, score: CSMHealthScore, narrative: ChurnNarrative, trend: Mapping[str, Any]
) -> str:
    """The alert's chat message: level, account, score, the trend's moves and the narrative."""
    moves = " ".join(line for line in trend_lines(trend) if not line.startswith("No stored"))
    return (
        f":rotating_light: *Churn risk {score.churn_risk_level}* for *{escape_chat(account.name)}* "
        f"({fmt_score(score.score, out_of=True)}, {score.rag.capitalize()}). {moves + ' ' if moves else ''}"
        f"{escape_chat(narrative.churn_narrative)}"
    )


async def _post_chat(
    ctx: CSMContext,
    account: AccountRecord,
    score: CSMHealthScore,
    narrative: ChurnNarrative,
    trend: Mapping[str, Any],
    key: str,
    task_type: str,
) -> str | None:
    space = account.chat_space or DEFAULT_CHAT_SPACE
    text = alert_chat_text(account, score, narrative, trend)
    message = ChatMessage(space_name=space, text=text, thread_key=account.account_id)
    artifact, _ = AUDIT_ARTIFACTS["chat_alert"]
    payload = {"message": message.model_dump(mode="json")}
    return await deliver(
        ctx,
        channel="chat",
        key=key,
        artifact=artifact,
        payload=payload,
        account_id=account.account_id,
        task_type=task_type,
    )
