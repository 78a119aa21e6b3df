"""Churn alerts: pick which accounts to alert (severity, cap, cooldown) and dispatch on the four channels."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Literal

import structlog

from src.app.config import redact_secrets
from src.app.context import CSMContext
from src.app.nodes.delivery import audit, check_recipient
from src.app.nodes.render import Section, escape_chat, render_html, render_text
from src.app.schemas import (
    AccountRecord,
    ChatMessage,
    ChurnNarrative,
    CSMAlertResult,
    CSMHealthScore,
    EmailMessage,
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


def risk_state(score: CSMHealthScore) -> str:
    """The risk state an alert is about; the cooldown suppresses repeats of the same state."""
    return f"{score.rag}/{score.churn_risk_level}"


def alert_key(ctx: CSMContext, score: CSMHealthScore) -> str:
    """The idempotency key of an account's churn alert: one per account, risk state and day."""
    return f"churn:{score.account_id}:{risk_state(score)}:{ctx.clock().date().isoformat()}"


async def alert_status(ctx: CSMContext, score: CSMHealthScore) -> AlertStatus:
    """Whether to alert: "done_today" (already raised today), "cooldown" (same state alerted recently) or "due"."""
    last = await ctx.store.last_alert(score.account_id)
    if last is not None and last.idempotency_key == alert_key(ctx, score):
        return "done_today"
    since = ctx.clock() - timedelta(days=ctx.settings.alert_cooldown_days)
    # A person rejected this account's alert for the same risk state as a false alarm: hold it for the cooldown.
    if risk_state(score) in await recent_false_alarms(ctx.store, score.account_id, since=since):
        return "cooldown"
    if last is None or last.risk_state != risk_state(score):
        return "due"
    return "cooldown" if last.alerted_at > since else "due"


def fallback_narrative(account: AccountRecord, score: CSMHealthScore) -> ChurnNarrative:
    """A deterministic narrative from the score alone, used when the LLM could not write one."""
    trigger = (score.churn_triggered_by or "overall health").replace("_", " ")
    return ChurnNarrative(
        churn_narrative=(
            f"{account.name} scored {score.score:.0f}/100 ({score.rag}); churn risk is {score.churn_risk_level}, "
            f"driven by {trigger}. The narrative could not be generated; see the signal breakdown."
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
) -> CSMAlertResult:
    """Alert on the system of record, the event bus, an email draft and chat; each channel independently."""
    key = alert_key(ctx, score)
    result = CSMAlertResult(account_id=account.account_id)
    # The mark on the record goes last: it starts the cooldown, so a run killed before it redoes the alert,
    # and every other channel is idempotent by key (nothing is duplicated by the redo).
    channels: dict[str, Callable[[str], Awaitable[tuple[str, str | None]]]] = {
        "event_bus": lambda artifact_key: _publish_event(ctx, account, score, narrative, artifact_key),
        "email_alert": lambda artifact_key: _draft_email(ctx, account, score, narrative, artifact_key),
        "chat_alert": lambda artifact_key: _post_chat(ctx, account, score, narrative, artifact_key),
        "notion": lambda artifact_key: _mark_record(ctx, score, artifact_key),
    }
    for channel, send in channels.items():
        artifact, suffix = AUDIT_ARTIFACTS[channel]
        try:
            target, artifact_id = await send(key + suffix)
        except Exception as error:  # noqa: BLE001 - one channel failing must not stop the others
            message = redact_secrets(f"{type(error).__name__}: {error}", ctx.settings)
            log.warning("alert_channel_failed", account_id=account.account_id, channel=channel, error=message)
            result.errors[channel] = message
            continue
        result.channels[channel] = True
        if channel == "email_alert":
            result.draft_id = artifact_id
        await audit(
            ctx,
            artifact=artifact,
            target=target,
            key=key + suffix,
            account_id=account.account_id,
            task_type=task_type,
            detail={"artifact_id": artifact_id},
        )
    result.alerts_sent = sum(result.channels.values())
    return result


async def _mark_record(ctx: CSMContext, score: CSMHealthScore, key: str) -> tuple[str, str | None]:
    await ctx.store.record_alert(score.account_id, risk_state(score), idempotency_key=key, at=ctx.clock())
    return "store:alerts", None


async def _publish_event(
    ctx: CSMContext, account: AccountRecord, score: CSMHealthScore, narrative: ChurnNarrative, key: str
) -> tuple[str, str | None]:
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
    event_id = await ctx.events.publish(CHURN_STREAM, event, idempotency_key=key)
    return f"stream:{CHURN_STREAM}", event_id


async def _draft_email(
    ctx: CSMContext, account: AccountRecord, score: CSMHealthScore, narrative: ChurnNarrative, key: str
) -> tuple[str, str | None]:
    to = check_recipient(ctx, account)
    heading = f"Churn risk {score.churn_risk_level}: {account.name} ({score.score:.0f}/100, {score.rag})"
    sections = [
        Section(title="What is happening", paragraphs=[narrative.churn_narrative]),
        Section(title="Recommended actions", bullets=narrative.recommended_actions),
        Section(title="Signal breakdown", bullets=[f"{k}: {v:g}" for k, v in score.signal_breakdown.items()]),
    ]
    message = EmailMessage(
        to=to,
        subject=heading,
        body_html=render_html(heading, sections),
        body_text=render_text(heading, sections),
    )
    draft = await ctx.mail.create_draft(message, idempotency_key=key, account_id=account.account_id, kind="churn_alert")
    return to, draft.draft_id


async def _post_chat(
    ctx: CSMContext, account: AccountRecord, score: CSMHealthScore, narrative: ChurnNarrative, key: str
) -> tuple[str, str | None]:
    space = account.chat_space or DEFAULT_CHAT_SPACE
    text = (
        f":rotating_light: *Churn risk {score.churn_risk_level}* for *{escape_chat(account.name)}* "
        f"({score.score:.0f}/100, {score.rag}). {escape_chat(narrative.churn_narrative)}"
    )
    message_id = await ctx.chat.post(
        ChatMessage(space_name=space, text=text, thread_key=account.account_id), idempotency_key=key
    )
    return f"chat:{space}", message_id
