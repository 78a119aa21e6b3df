"""A local OpenAI-compatible chat-completions server for tests and benchmarks.

`POST /v1/chat/completions` answers like the OpenAI API: schema-valid JSON written by the offline writer from
the request's `response_format` and fenced facts, a `usage` block, optional fixed latency, a requests-per-window
cap answered with 429 + `Retry-After`, and scripted one-shot faults. It runs aiohttp on its own event loop in a
daemon thread, so plain scripts and async tests use it the same way::

    with OpenAIServer(latency_s=1.0, rate_limit=600) as server:
        ...  # point litellm at model="openai/<name>", api_base=server.url
        server.requests  # what arrived: body, headers, time, status
"""

from __future__ import annotations

import asyncio
import collections
import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

from src.app.tools.llm.offline.provider import OfflineWriter

Fault = Literal["rate_limit", "server_error", "slow", "empty_content", "prose_json"]
"""One-shot faults: 429 (Retry-After `fault_retry_after_s`), 500, a reply `slow_s` late, empty content, prose JSON."""
Answer = Callable[[dict[str, Any]], str]
"""Writes the assistant's content for a request body."""

_CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class LoggedRequest:
    """One request as the server saw it."""

    body: dict[str, Any]
    headers: dict[str, str]
    received_at: float
    """`time.monotonic()` on arrival."""
    status: int
    reply: dict[str, Any]
    """The JSON body answered (a completion with `usage`, or an error)."""


def schema_answer(body: dict[str, Any]) -> str:
    """The offline writer's JSON for the request's messages and `response_format` (json_schema or json_object)."""
    response = OfflineWriter().completion(
        model=str(body.get("model") or ""),
        messages=body.get("messages") or [],
        optional_params={"response_format": body.get("response_format")},
    )
    return str(response.choices[0].message.content)


class OpenAIServer:
    """A chat-completions endpoint on 127.0.0.1 with latency, a rate cap, scripted faults and a request log."""

    def __init__(
        self,
        *,
        latency_s: float = 0.0,
        rate_limit: int | None = None,
        rate_window_s: float = 60.0,
        slow_s: float = 5.0,
        fault_retry_after_s: float = 1.0,
        answer: Answer = schema_answer,
    ) -> None:
        self.latency_s = latency_s
        self.rate_limit = rate_limit
        self.rate_window_s = rate_window_s
        self.slow_s = slow_s
        self.fault_retry_after_s = fault_retry_after_s
        self.answer = answer
        self.requests: list[LoggedRequest] = []
        self.arrivals = 0
        """Requests received so far, counted on arrival (a request appears in `requests` once answered)."""
        self.in_flight = 0
        self.max_in_flight = 0
        self._faults: collections.deque[Fault] = collections.deque()
        self._accepted: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """The `api_base` to give litellm / the openai client."""
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *faults: Fault) -> None:
        """Queue faults; each applies to exactly one upcoming request, in order."""
        with self._lock:
            self._faults.extend(faults)

    def statuses(self) -> list[int]:
        """The HTTP status of every request so far, in arrival order."""
        with self._lock:
            return [request.status for request in self.requests]

    def usage_total(self) -> dict[str, int]:
        """Calls and tokens of every completion answered so far (what a client's accounting should add up to)."""
        with self._lock:
            usages = [request.reply["usage"] for request in self.requests if "usage" in request.reply]
        return {
            "calls": len(usages),
            "prompt_tokens": sum(usage["prompt_tokens"] for usage in usages),
            "completion_tokens": sum(usage["completion_tokens"] for usage in usages),
        }

    def start(self) -> OpenAIServer:
        """Serve on a free port from a private event loop thread; returns self once listening."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="openai-server", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        """Stop serving (pending slow replies are cancelled) and close the loop."""
        if self._loop is None or self._thread is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        self._loop, self._thread, self._runner = None, None, None

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _chat_completions(self, request: web.Request) -> web.Response:
        body = await request.json()
        received_at = time.monotonic()
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
            retry_after = self._over_rate_limit(received_at)
            self.arrivals += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        status, reply = 499, _error("client_closed_request")  # kept if the client gives up first
        headers: dict[str, str] = {}
        try:
            status, reply, headers = await self._respond(body, fault, retry_after)
        finally:
            with self._lock:
                self.in_flight -= 1
                self.requests.append(LoggedRequest(body, dict(request.headers), received_at, status, reply))
        return web.json_response(reply, status=status, headers=headers)

    async def _respond(
        self, body: dict[str, Any], fault: Fault | None, retry_after: float | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if fault == "rate_limit":
            retry_after = self.fault_retry_after_s
        if retry_after is not None:
            headers = {
                "Retry-After": str(max(1, math.ceil(retry_after))),
                "retry-after-ms": str(round(retry_after * 1000)),
            }
            return 429, _error("rate_limit_exceeded"), headers
        if fault == "server_error":
            return 500, _error("server_error"), {}
        await asyncio.sleep(self.slow_s if fault == "slow" else self.latency_s)
        content = "" if fault == "empty_content" else self.answer(body)
        if fault == "prose_json":
            content = f"Sure! Here is the JSON you asked for:\n```json\n{content}\n```\nLet me know if you need more."
        return 200, _completion(body, content), {}

    def _over_rate_limit(self, now: float) -> float | None:
        """Seconds until a slot frees when the window is full (the request is then refused), else None."""
        if self.rate_limit is None:
            return None
        while self._accepted and self._accepted[0] <= now - self.rate_window_s:
            self._accepted.popleft()
        if len(self._accepted) >= self.rate_limit:
            return self._accepted[0] + self.rate_window_s - now
        self._accepted.append(now)
        return None


def _completion(body: dict[str, Any], content: str) -> dict[str, Any]:
    """A chat.completion object with usage counted at ~4 characters a token."""
    prompt_chars = sum(len(str(message.get("content") or "")) for message in body.get("messages") or [])
    prompt_tokens = max(1, prompt_chars // _CHARS_PER_TOKEN)
    completion_tokens = max(1, len(content) // _CHARS_PER_TOKEN) if content else 0
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", ""),
        "system_fingerprint": "fp_local",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    }


def _error(code: str) -> dict[str, Any]:
    """An OpenAI-style error body."""
    return {"error": {"message": f"local server: {code}", "type": code, "param": None, "code": code}}
