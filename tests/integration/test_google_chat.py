"""Google Chat: the adapter's real httpx client against a local server speaking the space-webhook wire format."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from src.app.config import CSMSettings
from src.app.schemas import ChatMessage
from src.app.tools.chat import ChatPoster
from src.app.tools.chat.google_chat import REPLY_OPTION, GoogleChat
from src.app.tools.delivery import ChannelPacer, ChatPostError, DeliveryLedger
from tests.support.chat_servers import Fault, GoogleChatServer, google_error_body

HOSTILE = "Acme <script>alert(1)</script> <users/all> @here AT&T, already &lt;b&gt;"
ESCAPED = "Acme &lt;script&gt;alert(1)&lt;/script&gt; &lt;users/all&gt; @here AT&amp;T, already &lt;b&gt;"


@pytest.fixture(scope="module")
def chat_server() -> Iterator[GoogleChatServer]:
    with GoogleChatServer() as server:
        yield server


@pytest.fixture
def gchat(chat_server: GoogleChatServer) -> GoogleChatServer:
    chat_server.reset()
    return chat_server


def chat_settings(settings: CSMSettings, url: str, *, rate: float = 50) -> CSMSettings:
    return settings.model_copy(update={"google_chat_webhook_url": SecretStr(url), "chat_messages_per_s": rate})


def fast_chat(url: str, tmp_path: Path, *, max_attempts: int = 4) -> GoogleChat:
    return GoogleChat(
        webhook_url=url,
        ledger=DeliveryLedger(tmp_path / "ledger.jsonl"),
        pacer=ChannelPacer(50),
        max_attempts=max_attempts,
        backoff_s=0.01,
    )


def alert(text: str = "Churn risk for Acme", *, account: str | None = "acc_1") -> ChatMessage:
    return ChatMessage(space_name="#cs-alerts", text=text, thread_key=account)


async def test_posts_escaped_text_in_the_accounts_thread(settings: CSMSettings, gchat: GoogleChatServer) -> None:
    chat: ChatPoster = GoogleChat.from_settings(chat_settings(settings, gchat.webhook_url))

    name = await chat.post(alert(HOSTILE), idempotency_key="k1")

    assert name == "spaces/AAAA-local/messages/M1"
    [posted] = gchat.messages
    assert posted.payload == {"text": ESCAPED, "thread": {"threadKey": "acc_1"}}
    assert posted.query == {"key": gchat.key, "token": gchat.secret_token, "messageReplyOption": REPLY_OPTION}
    assert posted.headers["Content-Type"] == "application/json"


async def test_each_account_keeps_one_thread_and_untracked_messages_start_new_ones(
    settings: CSMSettings, gchat: GoogleChatServer
) -> None:
    chat = GoogleChat.from_settings(chat_settings(settings, gchat.webhook_url))

    for key, account in [("k1", "acc_1"), ("k2", "acc_2"), ("k3", "acc_1"), ("k4", None)]:
        await chat.post(alert(account=account), idempotency_key=key)

    threads = [gchat.thread_of(posted) for posted in gchat.messages]
    assert threads[0] == threads[2] != threads[1]
    assert threads[3] is None and "thread" not in gchat.messages[3].payload


async def test_a_key_is_posted_once_even_after_a_restart(settings: CSMSettings, gchat: GoogleChatServer) -> None:
    configured = chat_settings(settings, gchat.webhook_url)
    first = await GoogleChat.from_settings(configured).post(alert(), idempotency_key="alert:acc_1:RED:chat")
    again = await GoogleChat.from_settings(configured).post(alert(), idempotency_key="alert:acc_1:RED:chat")

    assert again == first and len(gchat.requests) == 1


async def test_messages_to_the_space_are_paced(settings: CSMSettings, gchat: GoogleChatServer) -> None:
    chat = GoogleChat.from_settings(chat_settings(settings, gchat.webhook_url, rate=5))

    for n in range(3):
        await chat.post(alert(f"m{n}"), idempotency_key=f"k{n}")

    arrivals = [posted.at for posted in gchat.messages]
    # 3 messages at 5/s span at least 0.4 s; the span, not each gap, so a busy machine delaying one arrival
    # (while the next is on time) cannot fail it.
    assert len(arrivals) == 3 and arrivals[-1] - arrivals[0] >= 0.36


async def test_a_429_waits_for_retry_after_and_a_5xx_backs_off(gchat: GoogleChatServer, tmp_path: Path) -> None:
    too_many = google_error_body(429, "RESOURCE_EXHAUSTED", "Quota exceeded")
    gchat.faults = [Fault(429, too_many, retry_after="1"), Fault(503, google_error_body(503, "UNAVAILABLE", "x"))]

    await fast_chat(gchat.webhook_url, tmp_path).post(alert(), idempotency_key="k1")

    first, after_429, after_503 = gchat.requests
    assert after_429.at - first.at >= 1.0
    assert len(gchat.messages) == 1


async def test_persistent_5xx_gives_up_after_bounded_attempts(gchat: GoogleChatServer, tmp_path: Path) -> None:
    gchat.faults = [Fault(500, google_error_body(500, "INTERNAL", "boom")) for _ in range(3)]

    with pytest.raises(ChatPostError, match="after 3 attempts: HTTP 500 INTERNAL: boom"):
        await fast_chat(gchat.webhook_url, tmp_path, max_attempts=3).post(alert(), idempotency_key="k1")

    assert gchat.faults == [] and gchat.messages == []


async def test_a_wrong_token_is_a_clear_error_that_never_shows_the_secret(
    gchat: GoogleChatServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")  # importing litellm (earlier tests) raises it to WARNING
    wrong = gchat.webhook_url.replace(gchat.secret_token, "wrong-secret-token")

    with pytest.raises(ChatPostError, match="HTTP 401 UNAUTHENTICATED.*CSM_GOOGLE_CHAT_WEBHOOK_URL") as raised:
        await fast_chat(wrong, tmp_path).post(alert(), idempotency_key="k1")

    assert "wrong-secret-token" not in str(raised.value) and raised.value.__cause__ is None
    assert len(gchat.requests) == 1  # 401 is not retried
    ours = [record.getMessage() for record in caplog.records if not record.name.startswith("werkzeug")]
    assert any("HTTP Request: POST" in line for line in ours)  # httpx logged the request ...
    assert not any("secret" in line or gchat.key in line for line in ours)  # ... without key or token


async def test_a_rejected_payload_names_googles_reason(gchat: GoogleChatServer, tmp_path: Path) -> None:
    gchat.faults = [Fault(400, google_error_body(400, "INVALID_ARGUMENT", "Invalid thread key"))]

    with pytest.raises(ChatPostError, match="'AAAA-local' refused the message: HTTP 400 INVALID_ARGUMENT: Invalid"):
        await fast_chat(gchat.webhook_url, tmp_path).post(alert(), idempotency_key="k1")


async def test_an_unreachable_webhook_is_retried_then_reported(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1/spaces/S/messages?key=k&token=unreachable-secret"

    with pytest.raises(ChatPostError, match="unreachable after 2 attempts") as raised:
        await fast_chat(url, tmp_path, max_attempts=2).post(alert(), idempotency_key="k1")

    assert "unreachable-secret" not in str(raised.value)


def test_bad_or_missing_webhook_url_is_refused_without_echoing_it(settings: CSMSettings) -> None:
    with pytest.raises(ValueError, match="CSM_GOOGLE_CHAT_WEBHOOK_URL is not set"):
        GoogleChat.from_settings(settings)
    with pytest.raises(ValueError, match="not a Google Chat space webhook") as raised:
        GoogleChat.from_settings(chat_settings(settings, "https://example.com/hook?token=typo-secret"))
    assert "typo-secret" not in str(raised.value)


async def test_empty_text_is_refused(settings: CSMSettings, gchat: GoogleChatServer) -> None:
    with pytest.raises(ValueError, match="empty 'text'"):
        await GoogleChat.from_settings(chat_settings(settings, gchat.webhook_url)).post(
            alert("  "), idempotency_key="k"
        )
