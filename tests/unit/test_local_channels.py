"""The embedded channels: the local mail outbox, the local chat outbox and the in-process event bus."""

from __future__ import annotations

import email
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage as ParsedEmail
from pathlib import Path
from typing import Any

import pytest

from src.app.schemas import ChatMessage, EmailMessage
from src.app.tools.chat import ChatPoster
from src.app.tools.chat.outbox import LocalChatOutbox, safe_space_name
from src.app.tools.events import EventBus
from src.app.tools.events.in_process import InProcessEventBus
from src.app.tools.mail import MailDrafts
from src.app.tools.mail.outbox import LocalOutbox, draft_id_for, html_to_text
from src.app.tools.store.sql import SQLStore

ESCAPED_HTML = "<p>Customer wrote: &lt;script&gt;alert(1)&lt;/script&gt; &amp; more</p>"


@pytest.fixture
async def store() -> AsyncIterator[SQLStore]:
    sql_store = SQLStore("sqlite:///:memory:")
    yield sql_store
    await sql_store.aclose()


@pytest.fixture
def outbox(store: SQLStore, tmp_path: Path) -> LocalOutbox:
    return LocalOutbox(store, tmp_path / "drafts")


def message(**overrides: Any) -> EmailMessage:
    fields: dict[str, Any] = {
        "to": "rep@example.com",
        "subject": "Churn risk: Zoë's Café — RED ✓",
        "body_html": ESCAPED_HTML,
        "cc": ["csm-lead@example.com"],
    }
    return EmailMessage(**(fields | overrides))


def parse_eml(path: Path) -> ParsedEmail:
    parsed = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(parsed, ParsedEmail)
    return parsed


def part_text(parsed: ParsedEmail, subtype: str) -> str:
    part = parsed.get_body((subtype,))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n").rstrip("\n")


def test_local_adapters_satisfy_their_protocols(outbox: LocalOutbox, tmp_path: Path) -> None:
    adapters: tuple[MailDrafts, ChatPoster, EventBus] = (
        outbox,
        LocalChatOutbox(tmp_path),
        InProcessEventBus(),
    )
    assert len(adapters) == 3
    assert not hasattr(outbox, "send")


async def test_draft_is_an_eml_file_that_parses_back(outbox: LocalOutbox, tmp_path: Path) -> None:
    result = await outbox.create_draft(message(), idempotency_key="alert:acc_1:RED", account_id="acc_1")

    path = tmp_path / "drafts" / f"{result.draft_id}.eml"
    assert result.created and result.location == str(path)
    assert result.draft_id == draft_id_for("alert:acc_1:RED")
    parsed = parse_eml(path)
    assert parsed["To"] == "rep@example.com"
    assert parsed["Cc"] == "csm-lead@example.com"
    assert parsed["Subject"] == "Churn risk: Zoë's Café — RED ✓"
    assert parsed["X-Unsent"] == "1"
    assert parsed["X-CSM-Idempotency-Key"] == "alert:acc_1:RED"
    assert parsed["Message-ID"] == f"<{result.draft_id}@csm.local>"
    assert parsed.get_content_type() == "multipart/alternative"
    assert part_text(parsed, "html") == ESCAPED_HTML
    assert part_text(parsed, "plain") == "Customer wrote: <script>alert(1)</script> & more"


async def test_draft_uses_the_given_plain_text_when_present(outbox: LocalOutbox, tmp_path: Path) -> None:
    result = await outbox.create_draft(message(body_text="Plain version."), idempotency_key="k")

    assert part_text(parse_eml(tmp_path / "drafts" / f"{result.draft_id}.eml"), "plain") == "Plain version."


async def test_draft_is_recorded_in_the_review_queue(outbox: LocalOutbox, store: SQLStore) -> None:
    result = await outbox.create_draft(message(), idempotency_key="k", account_id="acc_1", kind="churn_alert")

    (record,) = await store.list_drafts()
    assert (record.draft_id, record.account_id, record.kind) == (result.draft_id, "acc_1", "churn_alert")
    assert (record.to, record.body_html, record.location) == (
        "rep@example.com",
        ESCAPED_HTML,
        result.location,
    )


async def test_same_key_twice_keeps_one_draft_and_does_not_rewrite_the_file(
    outbox: LocalOutbox, store: SQLStore, tmp_path: Path
) -> None:
    first = await outbox.create_draft(message(), idempotency_key="k")
    path = tmp_path / "drafts" / f"{first.draft_id}.eml"
    written = path.read_bytes()

    again = await outbox.create_draft(message(subject="Changed", body_html="<p>new</p>"), idempotency_key="k")

    assert (again.draft_id, again.created) == (first.draft_id, False)
    assert path.read_bytes() == written
    assert [file.name for file in (tmp_path / "drafts").iterdir()] == [path.name]
    assert await store.count("drafts") == 1


@pytest.mark.parametrize(
    "overrides",
    [
        {"to": "rep@example.com\nBcc: attacker@example.org"},
        {"cc": ["lead@example.com\r\nBcc: x@example.org"]},
    ],
)
async def test_header_injection_is_rejected(
    outbox: LocalOutbox, store: SQLStore, tmp_path: Path, overrides: dict[str, Any]
) -> None:
    with pytest.raises(ValueError, match="line break"):
        await outbox.create_draft(message(**overrides), idempotency_key="k")

    assert not (tmp_path / "drafts").exists()
    assert await store.count("drafts") == 0


def test_html_to_text_drops_tags_scripts_and_styles() -> None:
    html = "<style>p{}</style><h1>Title</h1><p>One &amp; two<br>three</p>"
    html += "<script>steal()</script><ul><li>a</li></ul>"

    assert html_to_text(html) == "Title\n\nOne & two\nthree\n\na"


@pytest.mark.parametrize(
    ("space", "stem"), [("#cs-alerts", "cs-alerts"), ("../../etc/passwd", "etc_passwd"), ("###", "default")]
)
def test_space_names_become_safe_file_stems(space: str, stem: str) -> None:
    assert safe_space_name(space) == stem


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


async def test_chat_messages_are_json_lines_per_space_and_idempotent(tmp_path: Path) -> None:
    chat = LocalChatOutbox(tmp_path)

    first = await chat.post(
        ChatMessage(space_name="#cs-alerts", text="Acme is RED", thread_key="acc_1"), idempotency_key="k1"
    )
    again = await chat.post(ChatMessage(space_name="#cs-alerts", text="Acme is RED"), idempotency_key="k1")
    other = await chat.post(ChatMessage(space_name="#cs-qbr", text="QBR ready"), idempotency_key="k2")

    assert first == again != other
    (line,) = read_lines(tmp_path / "cs-alerts.jsonl")
    assert {key: line[key] for key in ("id", "thread_key", "text", "idempotency_key")} == {
        "id": first,
        "thread_key": "acc_1",
        "text": "Acme is RED",
        "idempotency_key": "k1",
    }
    assert datetime.fromisoformat(line["posted_at"]).tzinfo is not None
    assert len(read_lines(tmp_path / "cs-qbr.jsonl")) == 1


async def test_chat_index_survives_a_new_outbox_on_the_same_folder(tmp_path: Path) -> None:
    first = await LocalChatOutbox(tmp_path).post(ChatMessage(space_name="#cs", text="hi"), idempotency_key="k1")
    with (tmp_path / "cs.jsonl").open("a", encoding="utf-8") as file:
        file.write('{"truncated": \n')

    restarted = LocalChatOutbox(tmp_path)
    again = await restarted.post(ChatMessage(space_name="#cs", text="hi"), idempotency_key="k1")
    fresh = await restarted.post(ChatMessage(space_name="#cs", text="bye"), idempotency_key="k2")

    assert again == first != fresh
    lines = (tmp_path / "cs.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["idempotency_key"] for line in (lines[0], lines[2])] == ["k1", "k2"]


async def test_event_bus_wraps_events_in_envelopes_and_is_idempotent() -> None:
    bus = InProcessEventBus()
    evidence = ["declining"]
    event = {"alert_type": "csm_churn_alert", "account_id": "acc_1", "evidence": evidence}

    event_id = await bus.publish("churn_alerts", event, idempotency_key="k1")
    again = await bus.publish("churn_alerts", {"alert_type": "other"}, idempotency_key="k1")
    evidence.append("mutated after publishing")

    assert again == event_id
    (envelope,) = bus.events("churn_alerts")
    assert envelope["id"] == event_id
    assert (envelope["stream"], envelope["idempotency_key"]) == ("churn_alerts", "k1")
    assert envelope["event"] == {
        "alert_type": "csm_churn_alert",
        "account_id": "acc_1",
        "evidence": ["declining"],
    }
    assert datetime.fromisoformat(envelope["published_at"]).tzinfo == UTC
    assert bus.events("other_stream") == []


async def test_event_bus_keeps_only_the_newest_events_per_stream() -> None:
    bus = InProcessEventBus(max_events=3)

    for index in range(5):
        await bus.publish("s", {"n": index}, idempotency_key=f"k{index}")
    await bus.publish("s", {"n": 4}, idempotency_key="k4")

    assert [envelope["event"]["n"] for envelope in bus.events("s")] == [2, 3, 4]


def test_event_bus_rejects_a_non_positive_bound() -> None:
    with pytest.raises(ValueError, match="max_events"):
        InProcessEventBus(max_events=0)


@pytest.mark.parametrize("payload", [{"at": datetime(2026, 1, 1, tzinfo=UTC)}, {"ids": {1, 2}}, {"x": float("nan")}])
async def test_event_bus_rejects_events_that_are_not_json_safe(payload: dict[str, Any]) -> None:
    bus = InProcessEventBus()

    with pytest.raises(TypeError, match="'churn_alerts' is not JSON-safe"):
        await bus.publish("churn_alerts", payload, idempotency_key="k")

    assert bus.events("churn_alerts") == []


async def test_a_failing_subscriber_does_not_break_publishing() -> None:
    bus = InProcessEventBus()
    received: list[dict[str, Any]] = []

    async def failing(envelope: dict[str, Any]) -> None:
        raise RuntimeError("downstream is down")

    async def recording(envelope: dict[str, Any]) -> None:
        received.append(envelope)

    bus.subscribe("churn_alerts", failing)
    bus.subscribe("churn_alerts", recording)

    event_id = await bus.publish("churn_alerts", {"account_id": "acc_1"}, idempotency_key="k1")
    await bus.publish("churn_alerts", {"account_id": "acc_1"}, idempotency_key="k1")

    assert [envelope["id"] for envelope in received] == [event_id]
    assert len(bus.events("churn_alerts")) == 1
