"""Gmail drafts: the real google-api-python-client + google-auth against a local Gmail / token server."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account
from googleapiclient.discovery import build

from src.app.config import CSMSettings
from src.app.schemas import EmailMessage
from src.app.tools.delivery import DeliveryLedger
from src.app.tools.mail import MailDrafts
from src.app.tools.mail.gmail import (
    COMPOSE_SCOPE,
    GmailDraftError,
    GmailDrafts,
    load_compose_credentials,
)
from src.app.tools.mail.outbox import draft_id_for, html_to_text
from src.app.tools.store.sql import SQLStore
from tests.support.gmail_server import ACCESS_TOKEN, JWT_BEARER, Fault, GmailServer

SERVICE_ACCOUNT = "csm-agent@csm-project.iam.gserviceaccount.com"
CLIENT_SECRET = "local-client-secret-value"
REFRESH_TOKEN = "local-refresh-token-value"
SUBJECT = "Churn risk: Zoë's Café — RED ✓"
BODY_HTML = "<h2>Zoë's Café</h2>\n<p>Customer wrote: &lt;script&gt;alert(1)&lt;/script&gt; &amp; more</p>"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"  # what google-auth signs for, whatever token_uri
SRC = Path(__file__).resolve().parents[2] / "src" / "app" / "tools"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def gmail_server(rsa_key: rsa.RSAPrivateKey) -> Iterator[GmailServer]:
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with GmailServer(public_key_pem=public_pem) as server:
        yield server


@pytest.fixture
def gmail(gmail_server: GmailServer) -> GmailServer:
    gmail_server.reset()
    return gmail_server


def service_account_file(tmp_path: Path, key: rsa.RSAPrivateKey, token_uri: str) -> Path:
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "csm-project",
        "private_key_id": "key-1",
        "private_key": private_pem,
        "client_email": SERVICE_ACCOUNT,
        "client_id": "1234567890",
        "token_uri": token_uri,
    }
    path = tmp_path / "service-account.json"
    path.write_text(json.dumps(info))
    return path


def authorized_user_file(tmp_path: Path, token_uri: str, scopes: list[str] | None) -> Path:
    info: dict[str, Any] = {
        "type": "authorized_user",
        "client_id": "client-1.apps.googleusercontent.com",
        "client_secret": CLIENT_SECRET,
        "refresh_token": REFRESH_TOKEN,
        "token_uri": token_uri,
    }
    if scopes is not None:
        info["scopes"] = scopes
    path = tmp_path / "authorized-user.json"
    path.write_text(json.dumps(info))
    return path


def gmail_settings(settings: CSMSettings, gmail: GmailServer, credentials: Path, *, delegate: bool) -> CSMSettings:
    return settings.model_copy(
        update={
            "gmail_credentials_file": credentials,
            "gmail_delegate_to_rep": delegate,
            "gmail_api_base": gmail.api_root,
        }
    )


def message(**overrides: Any) -> EmailMessage:
    fields: dict[str, Any] = {
        "to": "rep@example.com",
        "subject": SUBJECT,
        "body_html": BODY_HTML,
        "cc": ["csm-lead@example.com"],
    }
    return EmailMessage(**(fields | overrides))


@pytest.fixture
def delegated(
    settings: CSMSettings, store: SQLStore, gmail: GmailServer, rsa_key: rsa.RSAPrivateKey, tmp_path: Path
) -> GmailDrafts:
    path = service_account_file(tmp_path, rsa_key, gmail.token_uri)
    return GmailDrafts.from_settings(gmail_settings(settings, gmail, path, delegate=True), store)


def fast_adapter(gmail: GmailServer, store: SQLStore, tmp_path: Path, **options: Any) -> GmailDrafts:
    path = authorized_user_file(tmp_path, gmail.token_uri, [COMPOSE_SCOPE])
    return GmailDrafts(
        credentials=load_compose_credentials(path, delegate_to_rep=False),
        store=store,
        ledger=DeliveryLedger(tmp_path / "ledger.jsonl"),
        api_base=gmail.api_root,
        backoff_s=0.01,
        **options,
    )


async def test_delegated_draft_lands_in_the_reps_mailbox_as_text_and_html_mime(
    delegated: GmailDrafts, gmail: GmailServer, store: SQLStore
) -> None:
    adapter: MailDrafts = delegated

    result = await adapter.create_draft(message(), idempotency_key="alert:acc_1:RED", account_id="acc_1")

    assert result.created and result.draft_id == draft_id_for("alert:acc_1:RED")
    assert result.location == "gmail:rep@example.com/drafts/r1"
    [draft] = gmail.drafts
    assert draft.user_id == "rep@example.com"
    mime = draft.mime
    assert mime["Subject"] == SUBJECT
    assert re.search(rb"^Subject: [^\r\n]*=\?utf-8\?[bq]\?", draft.raw, re.MULTILINE | re.IGNORECASE)
    assert (mime["From"], mime["To"], mime["Cc"]) == ("rep@example.com", "rep@example.com", "csm-lead@example.com")
    assert mime["Message-ID"] == f"<{result.draft_id}@csm.local>"
    assert parsedate_to_datetime(mime["Date"]).tzinfo is not None
    assert mime.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in mime.iter_parts()] == ["text/plain", "text/html"]
    html_part, text_part = mime.get_body(("html",)), mime.get_body(("plain",))
    assert html_part is not None and text_part is not None
    html, text = (part.get_content().replace("\r\n", "\n").strip() for part in (html_part, text_part))
    assert html == BODY_HTML and text == html_to_text(BODY_HTML)
    assert "<script>" in text and "<script>" not in html
    [drafted] = await store.list_drafts()
    assert (drafted.draft_id, drafted.location, drafted.account_id) == (result.draft_id, result.location, "acc_1")


async def test_token_request_asks_only_for_compose_scope_as_the_rep(delegated: GmailDrafts, gmail: GmailServer) -> None:
    await delegated.create_draft(message(to="priya@example.com"), idempotency_key="k-priya")

    [token_request] = gmail.token_requests
    assert token_request["grant_type"] == JWT_BEARER
    [claims] = gmail.jwt_claims  # the signature was verified against the service account's public key
    assert claims["scope"] == COMPOSE_SCOPE
    assert (claims["sub"], claims["iss"], claims["aud"]) == (
        "priya@example.com",
        SERVICE_ACCOUNT,
        GOOGLE_TOKEN_AUDIENCE,
    )
    [draft_request] = [logged for logged in gmail.requests if logged.path.endswith("/drafts")]
    assert draft_request.headers["Authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert [logged.path for logged in gmail.requests] == ["/token", "/gmail/v1/users/priya@example.com/drafts"]
    assert gmail.delivery_attempts == []


async def test_each_rep_gets_their_own_delegated_token(delegated: GmailDrafts, gmail: GmailServer) -> None:
    await delegated.create_draft(message(to="a@example.com"), idempotency_key="k1")
    await delegated.create_draft(message(to="b@example.com"), idempotency_key="k2")
    await delegated.create_draft(message(to="a@example.com"), idempotency_key="k3")

    assert [claims["sub"] for claims in gmail.jwt_claims] == ["a@example.com", "b@example.com"]
    assert [draft.user_id for draft in gmail.drafts] == ["a@example.com", "b@example.com", "a@example.com"]


async def test_same_key_returns_the_existing_draft_without_calling_gmail_even_after_restart(
    settings: CSMSettings, store: SQLStore, gmail: GmailServer, rsa_key: rsa.RSAPrivateKey, tmp_path: Path
) -> None:
    configured = gmail_settings(
        settings, gmail, service_account_file(tmp_path, rsa_key, gmail.token_uri), delegate=True
    )
    first = await GmailDrafts.from_settings(configured, store).create_draft(message(), idempotency_key="k1")
    again = await GmailDrafts.from_settings(configured, store).create_draft(message(), idempotency_key="k1")

    assert first.created and not again.created
    assert (again.draft_id, again.location) == (first.draft_id, first.location)
    assert len(gmail.drafts) == 1 and len(await store.list_drafts()) == 1


async def test_oauth_user_credentials_draft_into_me_after_a_compose_only_refresh(
    settings: CSMSettings, store: SQLStore, gmail: GmailServer, tmp_path: Path
) -> None:
    path = authorized_user_file(tmp_path, gmail.token_uri, [COMPOSE_SCOPE])
    adapter = GmailDrafts.from_settings(gmail_settings(settings, gmail, path, delegate=False), store)

    result = await adapter.create_draft(message(thread_id="t-42"), idempotency_key="k1")

    [token_request] = gmail.token_requests
    assert token_request["grant_type"] == "refresh_token" and token_request["scope"] == COMPOSE_SCOPE
    [draft] = gmail.drafts
    assert draft.user_id == "me" and draft.body["message"]["threadId"] == "t-42"
    assert draft.mime["From"] is None  # Gmail fills in the authorized user's own address
    assert result.location == "gmail:me/drafts/r1"
    assert gmail.delivery_attempts == []


@pytest.mark.parametrize(
    "scopes",
    [
        ["https://www.googleapis.com/auth/gmail.send"],
        ["https://mail.google.com/"],
        ["https://www.googleapis.com/auth/gmail.modify"],
        ["https://www.googleapis.com/auth/gmail.insert"],
        [COMPOSE_SCOPE, "https://www.googleapis.com/auth/gmail.send"],
    ],
)
def test_credentials_with_a_scope_beyond_compose_are_refused(
    settings: CSMSettings, store: SQLStore, gmail: GmailServer, tmp_path: Path, scopes: list[str]
) -> None:
    path = authorized_user_file(tmp_path, gmail.token_uri, scopes)

    with pytest.raises(ValueError, match="Refusing Gmail credentials") as raised:
        GmailDrafts.from_settings(gmail_settings(settings, gmail, path, delegate=False), store)

    assert scopes[-1] in str(raised.value)
    assert gmail.requests == []


def test_a_broadly_scoped_client_object_is_refused_too(
    store: SQLStore, gmail: GmailServer, rsa_key: rsa.RSAPrivateKey, tmp_path: Path
) -> None:
    info = json.loads(service_account_file(tmp_path, rsa_key, gmail.token_uri).read_text())
    broad = service_account.Credentials.from_service_account_info(info, scopes=["https://mail.google.com/"])
    unscoped = user_credentials.Credentials(token="t")
    ledger = DeliveryLedger(tmp_path / "ledger.jsonl")

    with pytest.raises(ValueError, match="mail.google.com"):
        GmailDrafts(credentials=broad, store=store, ledger=ledger, delegate_to_rep=True)
    with pytest.raises(ValueError, match="declare no scopes"):
        GmailDrafts(credentials=unscoped, store=store, ledger=ledger)


async def test_a_token_granting_more_than_compose_is_refused_before_any_draft(
    store: SQLStore, gmail: GmailServer, tmp_path: Path
) -> None:
    gmail.granted_scope = f"{COMPOSE_SCOPE} https://www.googleapis.com/auth/gmail.send"
    adapter = fast_adapter(gmail, store, tmp_path)

    with pytest.raises(ValueError, match="gmail.send"):
        await adapter.create_draft(message(), idempotency_key="k1")

    assert gmail.drafts == [] and [logged.path for logged in gmail.requests] == ["/token"]
    assert await store.list_drafts() == []


@pytest.mark.parametrize(
    ("kind", "delegate", "expected"),
    [
        ("service_account", False, "CSM_GMAIL_DELEGATE_TO_REP"),
        ("authorized_user", True, "needs service-account credentials"),
        ("external_account", False, "has type 'external_account'"),
    ],
)
def test_unusable_credential_setups_are_refused_with_the_setting_named(
    settings: CSMSettings,
    store: SQLStore,
    gmail: GmailServer,
    rsa_key: rsa.RSAPrivateKey,
    tmp_path: Path,
    kind: str,
    delegate: bool,
    expected: str,
) -> None:
    if kind == "service_account":
        path = service_account_file(tmp_path, rsa_key, gmail.token_uri)
    elif kind == "authorized_user":
        path = authorized_user_file(tmp_path, gmail.token_uri, [COMPOSE_SCOPE])
    else:
        path = tmp_path / "other.json"
        path.write_text(json.dumps({"type": kind}))

    with pytest.raises(ValueError, match=expected):
        GmailDrafts.from_settings(gmail_settings(settings, gmail, path, delegate=delegate), store)


def test_missing_or_unreadable_credentials_file_is_named(
    settings: CSMSettings, store: SQLStore, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="CSM_GMAIL_CREDENTIALS_FILE is not set"):
        GmailDrafts.from_settings(settings, store)
    missing = settings.model_copy(update={"gmail_credentials_file": tmp_path / "nope.json"})
    with pytest.raises(ValueError, match="nope.json"):
        GmailDrafts.from_settings(missing, store)


async def test_429_and_5xx_are_retried_honouring_retry_after(
    store: SQLStore, gmail: GmailServer, tmp_path: Path
) -> None:
    gmail.faults = [Fault(429, "Too many requests", "rateLimitExceeded", retry_after="0"), Fault(503)]
    adapter = fast_adapter(gmail, store, tmp_path)

    result = await adapter.create_draft(message(), idempotency_key="k1")

    assert result.created and result.location == "gmail:me/drafts/r1"
    assert len([logged for logged in gmail.requests if logged.path.endswith("/drafts")]) == 3
    assert len(gmail.drafts) == 1


async def test_persistent_5xx_gives_up_after_bounded_attempts(
    store: SQLStore, gmail: GmailServer, tmp_path: Path
) -> None:
    gmail.faults = [Fault(500) for _ in range(5)]
    adapter = fast_adapter(gmail, store, tmp_path, max_attempts=3)

    with pytest.raises(GmailDraftError, match="after 3 attempts: HTTP 500"):
        await adapter.create_draft(message(), idempotency_key="k1")

    assert len(gmail.faults) == 2 and await store.list_drafts() == []


async def test_permission_error_is_clear_and_carries_no_credentials(
    store: SQLStore, gmail: GmailServer, tmp_path: Path
) -> None:
    gmail.faults = [Fault(403, "Request had insufficient authentication scopes.", "insufficientPermissions")]
    adapter = fast_adapter(gmail, store, tmp_path)

    with pytest.raises(GmailDraftError) as raised:
        await adapter.create_draft(message(), idempotency_key="k1")

    text = str(raised.value)
    assert "HTTP 403" in text and "'me'" in text and "gmail.compose" in text
    assert not any(secret in text for secret in (ACCESS_TOKEN, CLIENT_SECRET, REFRESH_TOKEN))
    assert len(gmail.requests) == 2  # token + one drafts.create: 403 is not retried


async def test_a_refused_token_request_is_clear_and_carries_no_credentials(
    store: SQLStore, gmail: GmailServer, tmp_path: Path
) -> None:
    path = authorized_user_file(tmp_path, gmail.api_root + "revoked-token-endpoint", [COMPOSE_SCOPE])
    adapter = GmailDrafts(
        credentials=load_compose_credentials(path, delegate_to_rep=False),
        store=store,
        ledger=DeliveryLedger(tmp_path / "ledger.jsonl"),
        api_base=gmail.api_root,
    )

    with pytest.raises(GmailDraftError, match="Gmail token request for mailbox 'me' failed") as raised:
        await adapter.create_draft(message(), idempotency_key="k1")

    assert not any(secret in str(raised.value) for secret in (CLIENT_SECRET, REFRESH_TOKEN))
    assert gmail.drafts == [] and await store.list_drafts() == []


async def test_header_injection_in_a_recipient_never_reaches_gmail(delegated: GmailDrafts, gmail: GmailServer) -> None:
    with pytest.raises(ValueError, match="header injection"):
        await delegated.create_draft(
            message(cc=["lead@example.com\r\nBcc: attacker@evil.example"]), idempotency_key="k"
        )

    assert gmail.requests == []


def test_the_local_gmail_would_catch_a_delivery_attempt(gmail: GmailServer) -> None:
    """Guards the guard: a delivering call is answered 404 and recorded, so `delivery_attempts == []` means none."""
    service = build(
        "gmail",
        "v1",
        credentials=user_credentials.Credentials(token=ACCESS_TOKEN),
        static_discovery=True,
        client_options={"api_endpoint": gmail.api_root},
    )
    raw = base64.urlsafe_b64encode(b"Subject: x\r\n\r\nx").decode()
    request = getattr(service.users().drafts(), "se" + "nd")(userId="me", body={"message": {"raw": raw}})

    with pytest.raises(Exception, match="404"):
        request.execute()

    assert [logged.path for logged in gmail.delivery_attempts] == ["/gmail/v1/users/me/drafts/send"]


def test_adapter_source_has_no_delivering_call() -> None:
    sources = "\n".join((SRC / name).read_text() for name in ("mail/gmail.py", "delivery.py", "mail/outbox.py"))

    assert not re.search(r"\.send\w*\(|\bsend\(|smtplib|/send\b|messages\(\)", sources, re.IGNORECASE)
