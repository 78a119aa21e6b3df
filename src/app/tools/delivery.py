"""Shared by the real outbound adapters (Gmail, Slack, Google Chat): idempotency ledger, pacing, escaping, backoff."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import structlog
from aiolimiter import AsyncLimiter

from src.app.tools.ratelimit import SharedPacer
from src.app.tools.retry_after import retry_after_seconds

DELIVERED = "delivered"
"""Ledger kind: idempotency key -> the id of the draft or message created for it."""
THREAD = "thread"
"""Ledger kind: `<channel> <thread_key>` -> the chat thread id that later messages reply to."""
MAX_RETRY_WAIT_S = 60.0
"""Longest wait honoured for one `Retry-After` or backoff step."""

_UNESCAPED = re.compile(r"&(?!(?:amp|lt|gt);)|<|>")
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}

logger = structlog.get_logger(__name__)


class ChatPostError(RuntimeError):
    """A chat backend refused or could not take a message; the text names the cause, never a secret."""


class DeliveryLedger:
    """What an adapter already delivered, as JSON lines in one file, so a restart never repeats a draft or post.

    Append-only: a crash mid-write leaves at most one torn last line, which is skipped on load.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._entries: dict[tuple[str, str], str] | None = None
        self._file_lock = threading.Lock()
        self._load_lock = asyncio.Lock()
        self._key_locks: dict[str, asyncio.Lock] = {}

    async def get(self, kind: str, key: str) -> str | None:
        """The value recorded for (`kind`, `key`), or None."""
        return (await self._loaded()).get((kind, key))

    async def put(self, kind: str, key: str, value: str) -> None:
        """Record `value` for (`kind`, `key`) durably (fsync) before returning."""
        entries = await self._loaded()
        line = json.dumps({"kind": kind, "key": key, "value": value}, ensure_ascii=False) + "\n"
        await asyncio.to_thread(self._append, line)
        entries[(kind, key)] = value

    async def once(
        self, kind: str, key: str, make: Callable[[], Awaitable[str]], *, lock: str | None = None
    ) -> tuple[str, bool]:
        """The value recorded for (`kind`, `key`), else `make()`'s, recorded; True when it was made now.

        Check and make run under one lock (`lock`, a channel for example, or the key itself), so two callers
        never make the same delivery twice; a failed `make()` records nothing and is retried by the next call.
        """
        async with self.lock(lock or key):
            value = await self.get(kind, key)
            if value is not None:
                return value, False
            value = await make()
            await self.put(kind, key, value)
            return value, True

    def lock(self, name: str) -> asyncio.Lock:
        """One lock per name (a key or a channel), so check-then-deliver never runs twice at once."""
        return self._key_locks.setdefault(name, asyncio.Lock())

    async def _loaded(self) -> dict[tuple[str, str], str]:
        async with self._load_lock:
            if self._entries is None:
                self._entries = await asyncio.to_thread(self._read)
            return self._entries

    def _read(self) -> dict[tuple[str, str], str]:
        entries: dict[tuple[str, str], str] = {}
        if not self._path.exists():
            return entries
        for number, line in enumerate(self._path.read_text(encoding="utf-8").splitlines(), start=1):
            try:
                entry = json.loads(line)
                entries[(str(entry["kind"]), str(entry["key"]))] = str(entry["value"])
            except (json.JSONDecodeError, KeyError, TypeError):
                logger.warning("delivery_ledger_line_skipped", file=self._path.name, line=number)
        return entries

    def _append(self, line: str) -> None:
        with self._file_lock:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            with self._path.open("a", encoding="utf-8") as file:
                file.write(line)
                file.flush()
                os.fsync(file.fileno())


class ChannelPacer:
    """At most `messages_per_s` messages per channel, evenly spaced (no bursts); `shared` holds it across workers."""

    def __init__(self, messages_per_s: float, *, shared: SharedPacer | None = None) -> None:
        if messages_per_s <= 0:
            raise ValueError(f"messages_per_s must be positive, got {messages_per_s!r}")
        self._period_s = 1 / messages_per_s
        self._limiters: dict[str, AsyncLimiter] = {}
        self._shared = shared

    @asynccontextmanager
    async def turn(self, channel: str) -> AsyncIterator[None]:
        """Wait for this channel's next free slot."""
        limiter = self._limiters.setdefault(channel, AsyncLimiter(1, self._period_s))
        async with limiter:
            if self._shared is not None:
                await self._shared.wait(channel)
            yield


def escape_chat_text(text: str) -> str:
    """Escape `&`, `<`, `>` for Slack mrkdwn / Google Chat, leaving existing `&amp;`/`&lt;`/`&gt;` as they are.

    Idempotent, so text already escaped by the renderer is not double-escaped, while raw `<!channel>`,
    `<users/all>` or `<script>` can never become a mention, link or tag.
    """
    return _UNESCAPED.sub(lambda match: _ENTITIES[match.group()], text)


def retry_delay(attempt: int, *, base_s: float, retry_after: str | None = None) -> float:
    """Seconds to wait before retry number `attempt` (1-based): the server's `Retry-After`, else exponential."""
    asked = retry_after_seconds(retry_after)
    if asked is not None:
        return min(asked, MAX_RETRY_WAIT_S)
    return min(base_s * 2.0 ** (attempt - 1), MAX_RETRY_WAIT_S)


def key_digest(idempotency_key: str) -> str:
    """A short, stable digest of an idempotency key (draft and message ids are derived from it)."""
    return hashlib.sha256(idempotency_key.encode()).hexdigest()[:16]
