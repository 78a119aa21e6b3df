"""Backend selection: every real backend is switched on by its setting alone, the rest stay embedded."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from src.app.config import CSMSettings
from src.app.context import aclose_clients, build_context
from src.app.tools.chat.google_chat import GoogleChat
from src.app.tools.chat.outbox import LocalChatOutbox
from src.app.tools.chat.slack import SlackChat
from src.app.tools.events.in_process import InProcessEventBus
from src.app.tools.events.redis_streams import RedisEventBus
from src.app.tools.mail.outbox import LocalOutbox
from src.app.tools.store.notion.store import NotionStore
from src.app.tools.store.sql import SQLStore


async def test_no_settings_means_every_embedded_default(settings: CSMSettings) -> None:
    context = build_context(settings)
    assert isinstance(context.store, SQLStore)
    assert isinstance(context.mail, LocalOutbox)
    assert isinstance(context.chat, LocalChatOutbox)
    assert isinstance(context.events, InProcessEventBus)
    await aclose_clients(context)


async def test_each_setting_switches_its_backend(settings: CSMSettings) -> None:
    configured = settings.model_copy(
        update={
            "notion_token": SecretStr("secret_wiring"),
            "notion_accounts_database_id": "0" * 32,
            "slack_bot_token": SecretStr("xoxb-wiring"),
            "redis_url": SecretStr("redis://127.0.0.1:1/0"),
        }
    )
    context = build_context(configured)
    assert isinstance(context.store, NotionStore)
    assert isinstance(context.chat, SlackChat)
    assert isinstance(context.events, RedisEventBus)
    assert isinstance(context.mail, LocalOutbox)  # no Gmail credentials: drafts stay local
    await aclose_clients(context)


async def test_google_chat_is_used_when_slack_is_not_configured(settings: CSMSettings) -> None:
    configured = settings.model_copy(
        update={"google_chat_webhook_url": SecretStr("http://127.0.0.1:9/v1/spaces/S/messages?key=k&token=t")}
    )
    context = build_context(configured)
    assert isinstance(context.chat, GoogleChat)
    await aclose_clients(context)


def test_a_half_configured_backend_is_refused_by_name(settings: CSMSettings, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="CSM_NOTION_ACCOUNTS_DATABASE_ID"):
        build_context(settings.model_copy(update={"notion_token": SecretStr("secret_wiring")}))
    with pytest.raises(ValueError, match="CSM_GMAIL_CREDENTIALS_FILE|credentials"):
        build_context(settings.model_copy(update={"gmail_credentials_file": tmp_path / "missing.json"}))
