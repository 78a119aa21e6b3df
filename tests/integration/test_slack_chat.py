"""Slack: the real slack_sdk async clients against a local server speaking the Web API and webhook wire format."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from src.app.config import CSMSettings
from src.app.schemas import ChatMessage
from src.app.tools.chat import ChatPoster
from src.app.tools.chat.slack import SlackChat
from src.app.tools.delivery import ChatPostError
from tests.support.chat_servers import Fault, SlackServer, slack_error_body

HOSTILE = "Acme <script>alert(1)</script> <!channel> @here <https://evil.example|click> AT&T, already &lt;b&gt;"
ESCAPED = (
    "Acme &lt;script&gt;alert(1)&lt;/script&gt; &lt;!channel&gt; @here "
    "&lt;https://evil.example|click&gt; AT&amp;T, already &lt;b&gt;"
)


@pytest.fixture(scope="module")
def slack_server() -> Iterator[SlackServer]:
    with SlackServer() as server:
        yield server


@pytest.fixture
def slack(slack_server: SlackServer) -> SlackServer:
    slack_server.reset()
    return slack_server


def web_settings(
    settings: CSMSettings, slack: SlackServer, *, rate: float = 50, token: str | None = None
) -> CSMSettings:
    return settings.model_copy(
        update={
            "slack_bot_token": SecretStr(token or slack.token),
            "slack_api_base": slack.api_base,
            "chat_messages_per_s": rate,
        }
    )


def webhook_settings(settings: CSMSettings, url: str) -> CSMSettings:
    return settings.model_copy(update={"slack_webhook_url": SecretStr(url), "chat_messages_per_s": 50})


def alert(
    text: str = "Churn risk for Acme", *, space: str = "#cs-alerts", account: str | None = "acc_1"
) -> ChatMessage:
    return ChatMessage(space_name=space, text=text, thread_key=account)


async def test_web_api_posts_escaped_text_that_cannot_mention_link_or_unfurl(
    settings: CSMSettings, slack: SlackServer
) -> None:
    chat: ChatPoster = SlackChat.from_settings(web_settings(settings, slack))

    message_id = await chat.post(alert(HOSTILE), idempotency_key="k1")

    assert message_id == "C0ALERTS/1764000000.000001"
    [posted] = slack.messages
    assert posted.payload["channel"] == "#cs-alerts"
    assert posted.payload["text"] == ESCAPED and "<" not in posted.payload["text"]
    assert posted.payload["parse"] == "none" and posted.payload["link_names"] is False
    assert posted.payload["unfurl_links"] is False and posted.payload["unfurl_media"] is False
    assert "thread_ts" not in posted.payload


async def test_each_account_gets_one_thread_per_channel_that_survives_a_restart(
    settings: CSMSettings, slack: SlackServer
) -> None:
    configured = web_settings(settings, slack)
    chat = SlackChat.from_settings(configured)
    first_acc_1 = await chat.post(alert(account="acc_1"), idempotency_key="k1")
    await chat.post(alert(account="acc_2"), idempotency_key="k2")
    await chat.post(alert(account="acc_1"), idempotency_key="k3")
    await SlackChat.from_settings(configured).post(alert(account="acc_1"), idempotency_key="k4")
    await chat.post(alert(account="acc_1", space="#cs-smb"), idempotency_key="k5")
    await chat.post(alert(account=None), idempotency_key="k6")

    thread_of_acc_1 = first_acc_1.split("/")[1]
    assert [posted.payload.get("thread_ts") for posted in slack.messages] == [
        None,
        None,
        thread_of_acc_1,
        thread_of_acc_1,
        None,
        None,
    ]


async def test_a_key_is_posted_once_even_after_a_restart(settings: CSMSettings, slack: SlackServer) -> None:
    configured = web_settings(settings, slack)
    first = await SlackChat.from_settings(configured).post(alert(), idempotency_key="alert:acc_1:RED:chat")
    again = await SlackChat.from_settings(configured).post(alert(), idempotency_key="alert:acc_1:RED:chat")

    assert again == first and len(slack.messages) == 1


async def test_one_channel_is_paced_while_other_channels_do_not_wait(settings: CSMSettings, slack: SlackServer) -> None:
    chat = SlackChat.from_settings(web_settings(settings, slack, rate=5))  # one message per 0.2 s per channel

    await asyncio.gather(
        *(chat.post(alert(f"a{n}"), idempotency_key=f"a{n}") for n in range(3)),
        chat.post(alert("b0", space="#cs-smb"), idempotency_key="b0"),
    )

    arrivals = {posted.payload["text"]: posted.at for posted in slack.messages}
    assert arrivals["a1"] - arrivals["a0"] >= 0.18 and arrivals["a2"] - arrivals["a1"] >= 0.18
    assert arrivals["b0"] < arrivals["a1"]


async def test_a_429_is_retried_after_its_retry_after(settings: CSMSettings, slack: SlackServer) -> None:
    slack.faults = [Fault(429, slack_error_body("ratelimited"), "chat.postMessage", retry_after="1")]
    chat = SlackChat.from_settings(web_settings(settings, slack))

    await chat.post(alert(), idempotency_key="k1")

    first, retried = slack.requests
    assert retried.at - first.at >= 1.0
    assert len(slack.messages) == 1


async def test_unknown_channel_is_a_clear_error_and_is_not_recorded_as_posted(
    settings: CSMSettings, slack: SlackServer
) -> None:
    chat = SlackChat.from_settings(web_settings(settings, slack))

    with pytest.raises(ChatPostError, match=r"'#nope' failed: channel_not_found \(no such channel"):
        await chat.post(alert(space="#nope"), idempotency_key="k1")
    slack.channels["#nope"] = "C0NOPE"
    await chat.post(alert(space="#nope"), idempotency_key="k1")

    assert len(slack.messages) == 1


async def test_a_rejected_token_is_named_but_never_shown(settings: CSMSettings, slack: SlackServer) -> None:
    wrong = "xoxb-wrong-secret-token"
    chat = SlackChat.from_settings(web_settings(settings, slack, token=wrong))

    with pytest.raises(ChatPostError, match="invalid_auth.*CSM_SLACK_BOT_TOKEN") as raised:
        await chat.post(alert(), idempotency_key="k1")

    assert wrong not in str(raised.value) and wrong not in repr(raised.value.__cause__)


async def test_empty_space_uses_the_default_channel_and_empty_text_is_refused(
    settings: CSMSettings, slack: SlackServer
) -> None:
    configured = web_settings(settings, slack).model_copy(update={"slack_default_channel": "#cs-smb"})
    chat = SlackChat.from_settings(configured)

    await chat.post(alert(space=" "), idempotency_key="k1")
    with pytest.raises(ValueError, match="empty 'text'"):
        await chat.post(alert(" "), idempotency_key="k2")

    assert [posted.payload["channel"] for posted in slack.messages] == ["#cs-smb"]


def test_slack_needs_a_token_or_a_webhook(settings: CSMSettings) -> None:
    with pytest.raises(ValueError, match="CSM_SLACK_BOT_TOKEN.*CSM_SLACK_WEBHOOK_URL"):
        SlackChat.from_settings(settings)


async def test_webhook_posts_escaped_text_once_and_retries_a_429(
    settings: CSMSettings, slack: SlackServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    slack.faults = [Fault(429, "rate_limited", slack.webhook_path, retry_after="0", content_type="text/html")]
    configured = webhook_settings(settings, slack.webhook_url)

    first = await SlackChat.from_settings(configured).post(alert(HOSTILE), idempotency_key="k1")
    again = await SlackChat.from_settings(configured).post(alert(HOSTILE), idempotency_key="k1")

    assert first == again and first.startswith("webhook/")
    assert len(slack.requests) == 2  # the 429 and its retry; the repeated key made no request
    [posted] = slack.webhook_messages
    assert posted.payload == {"text": ESCAPED, "link_names": False, "unfurl_links": False, "unfurl_media": False}
    ours = [record.getMessage() for record in caplog.records if not record.name.startswith("werkzeug")]
    assert not any(slack.webhook_path in line for line in ours)


async def test_a_revoked_webhook_is_a_clear_error_without_its_url(settings: CSMSettings, slack: SlackServer) -> None:
    revoked = slack.url("/services/T0000/B0000/revoked-secret")
    chat = SlackChat.from_settings(webhook_settings(settings, revoked))

    with pytest.raises(ChatPostError, match="HTTP 404 no_service.*CSM_SLACK_WEBHOOK_URL") as raised:
        await chat.post(alert(), idempotency_key="k1")

    assert "revoked-secret" not in str(raised.value) and raised.value.__cause__ is None
