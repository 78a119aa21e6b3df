"""Draft-only, structurally: no module under src/ references a way to send email."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
SEND_PATTERNS = {
    "SMTP client": re.compile(r"\bsmtplib\b|\bSMTP(_SSL)?\s*\(|\bstarttls\b", re.IGNORECASE),
    "sendmail": re.compile(r"sendmail", re.IGNORECASE),
    "send_message (smtplib / Gmail)": re.compile(r"\bsend_message\s*\("),
    "Gmail drafts().send / messages().send": re.compile(r"\.(drafts|messages)\(\)\s*\.\s*send\b"),
    "Gmail REST send path": re.compile(r"(drafts|messages)/send\b"),
    "Gmail send scope": re.compile(r"auth/gmail\.send|https://mail\.google\.com/"),
    "a .send( call": re.compile(r"\.send\s*\("),
}
"""Every way we know to send mail from Python or through the Gmail API; none may appear anywhere in src/."""


def offences(text: str) -> list[str]:
    """The names of the send patterns found in `text`."""
    return [name for name, pattern in SEND_PATTERNS.items() if pattern.search(text)]


def source_files() -> list[Path]:
    return sorted(path for path in SRC.rglob("*.py") if "__pycache__" not in path.parts)


def test_the_scan_covers_the_mail_adapters() -> None:
    names = {path.relative_to(SRC).as_posix() for path in source_files()}
    assert {"app/tools/mail/outbox.py", "app/tools/mail/__init__.py", "app/tools/mail/gmail.py"} <= names
    assert len(names) > 40


@pytest.mark.parametrize("path", source_files(), ids=lambda p: p.relative_to(SRC).as_posix())
def test_no_source_file_references_a_send_endpoint_or_smtp(path: Path) -> None:
    found = offences(path.read_text(encoding="utf-8"))
    assert found == [], f"{path.relative_to(SRC)} references {', '.join(found)}: the agent may only create drafts"


@pytest.mark.parametrize("path", source_files(), ids=lambda p: p.relative_to(SRC).as_posix())
def test_no_mail_adapter_has_a_send_method(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef):
            continue
        methods = {item.name for item in node.body if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)}
        if "create_draft" in methods:
            assert not [m for m in methods if "send" in m.lower()], f"{node.name} in {path.name} can send"


@pytest.mark.parametrize(
    "snippet",
    [
        "import smtplib",
        "server = SMTP_SSL('smtp.example.com')",
        "os.system('/usr/sbin/sendmail -t')",
        "service.users().drafts().send(userId='me', body=body).execute()",
        "service.users().messages()\n    .send(userId='me', body=raw)",
        "await client.post(f'{base}/gmail/v1/users/me/messages/send', json=body)",
        "SCOPES = ['https://www.googleapis.com/auth/gmail.send']",
        "SCOPES = ['https://mail.google.com/']",
        "smtp.send_message(msg)",
        "draft.send()",
    ],
)
def test_the_scan_catches_every_known_way_to_send(snippet: str) -> None:
    assert offences(snippet), snippet


@pytest.mark.parametrize(
    "snippet",
    [
        "service.users().drafts().create(userId='me', body=body)",
        "SCOPES = ['https://www.googleapis.com/auth/gmail.compose']",
        "await webhook.send_dict(payload)",
        "sender=message.to",
    ],
)
def test_the_scan_allows_drafts_and_chat(snippet: str) -> None:
    assert offences(snippet) == []
