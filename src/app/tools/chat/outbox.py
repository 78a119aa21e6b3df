"""The embedded chat channel: each message appended as a JSON line to `<space>.jsonl` in the local outbox."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from src.app.schemas import ChatMessage
from src.app.tools.delivery import key_digest

_UNSAFE_FILENAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")

logger = structlog.get_logger(__name__)


class LocalChatOutbox:
    """`ChatPoster` for the embedded default: appends each message as a JSON line to `<space>.jsonl`.

    Idempotent by key across restarts: the keys already in the folder are indexed on first use.
    """

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._lock = threading.Lock()
        self._posted: dict[str, str] | None = None

    async def post(self, message: ChatMessage, *, idempotency_key: str) -> str:
        """Append `message` to its space's file unless this key was posted; returns the message id."""
        return await asyncio.to_thread(self._post, message, idempotency_key)

    def _post(self, message: ChatMessage, idempotency_key: str) -> str:
        with self._lock:
            posted = self._posted_index()
            if idempotency_key in posted:
                return posted[idempotency_key]
            message_id = f"msg_{key_digest(idempotency_key)}"
            line = {
                "id": message_id,
                "space": message.space_name,
                "thread_key": message.thread_key,
                "text": message.text,
                "idempotency_key": idempotency_key,
                "posted_at": datetime.now(UTC).isoformat(),
            }
            self._folder.mkdir(parents=True, exist_ok=True)
            path = self._folder / f"{safe_space_name(message.space_name)}.jsonl"
            with path.open("a", encoding="utf-8") as file:
                file.write(json.dumps(line, ensure_ascii=False) + "\n")
            posted[idempotency_key] = message_id
            return message_id

    def _posted_index(self) -> dict[str, str]:
        if self._posted is None:
            self._posted = _index_posted_messages(self._folder)
        return self._posted


def safe_space_name(space_name: str) -> str:
    """A chat space name as a safe file stem (`#cs-alerts` -> `cs-alerts`)."""
    return _UNSAFE_FILENAME_CHARS.sub("_", space_name).strip("._")[:100] or "default"


def _index_posted_messages(folder: Path) -> dict[str, str]:
    """Idempotency key -> message id for every message already in the folder (unreadable lines skipped)."""
    posted: dict[str, str] = {}
    for path in sorted(folder.glob("*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            entry = _parse_line(line)
            if entry is None:
                logger.warning("chat_outbox_line_skipped", file=path.name, line=number)
                continue
            posted[str(entry["idempotency_key"])] = str(entry["id"])
    return posted


def _parse_line(line: str) -> dict[str, Any] | None:
    try:
        entry = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(entry, dict) or "idempotency_key" not in entry or "id" not in entry:
        return None
    return entry
