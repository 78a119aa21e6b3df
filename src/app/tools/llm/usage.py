"""LLM usage per run: calls, tokens and cost, collected by meters that a context variable keeps in scope.

A run (a scheduled job, an agent task, the demo) opens `metered()`; every completion made inside it, in any
task spawned from it, is added with `record_llm_usage`. Meters nest: a job's meter sees the calls of every task
it runs while each task's own meter sees only its calls, and two runs that overlap on one event loop never see
each other's calls, because each has its own copy of the context.

A Celery worker also opens `usage_sink()` around each task: `deliver_llm_usage` hands every reply to it the
moment the reply arrives, before the graph checkpoints it, so the run records the call even if the worker dies
before the task's outcome is recorded (its redelivery resumes from the checkpoint and does not call again).
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from src.app.tools.llm import LLMReply

_COST_DIGITS = 6
_ACTIVE: ContextVar[tuple[UsageMeter, ...]] = ContextVar("csm_llm_usage_meters", default=())
UsageSink = Callable[[LLMReply], Awaitable[None]]
"""Records one reply's usage durably (a worker: a row on its run)."""
_SINKS: ContextVar[tuple[UsageSink, ...]] = ContextVar("csm_llm_usage_sinks", default=())


@dataclass
class ModelUsage:
    """Running totals for one model."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    def add(self, reply: LLMReply) -> None:
        """Count one completion."""
        self.calls += 1
        self.prompt_tokens += reply.prompt_tokens
        self.completion_tokens += reply.completion_tokens
        self.cost_usd += reply.cost_usd

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe totals, with total tokens and the cost rounded to a millionth of a dollar."""
        return {
            "calls": self.calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "cost_usd": round(self.cost_usd, _COST_DIGITS),
        }


class UsageMeter:
    """Accumulates the completions recorded while it is active, in total and by model."""

    def __init__(self) -> None:
        self._by_model: dict[str, ModelUsage] = {}
        self._lock = threading.Lock()

    def add(self, reply: LLMReply) -> None:
        """Count one completion under its model."""
        with self._lock:
            self._by_model.setdefault(reply.model or "unknown", ModelUsage()).add(reply)

    def summary(self) -> dict[str, Any]:
        """Totals plus a `by_model` breakdown, JSON-safe (the block stored with a run)."""
        with self._lock:
            return _summary(self._by_model)


def _summary(by_model: Mapping[str, ModelUsage]) -> dict[str, Any]:
    usages = list(by_model.values())
    total = ModelUsage(
        calls=sum(usage.calls for usage in usages),
        prompt_tokens=sum(usage.prompt_tokens for usage in usages),
        completion_tokens=sum(usage.completion_tokens for usage in usages),
        cost_usd=sum(usage.cost_usd for usage in usages),
    )
    return {**total.as_dict(), "by_model": {model: usage.as_dict() for model, usage in sorted(by_model.items())}}


def added_usage(blocks: Iterable[Mapping[str, Any] | None]) -> dict[str, Any]:
    """The sum of `llm_usage` blocks from several processes (a run's workers), totals and `by_model` alike.

    A block without `by_model` (an older version's) counts in the totals under the model "unknown".
    """
    by_model: dict[str, ModelUsage] = {}
    for block in blocks:
        models = (block or {}).get("by_model")
        parts = models.items() if isinstance(models, Mapping) and models else [("unknown", block or {})]
        for model, usage in parts:
            if not int(usage.get("calls") or 0) and not float(usage.get("cost_usd") or 0.0):
                continue
            total = by_model.setdefault(str(model), ModelUsage())
            total.calls += int(usage.get("calls") or 0)
            total.prompt_tokens += int(usage.get("prompt_tokens") or 0)
            total.completion_tokens += int(usage.get("completion_tokens") or 0)
            total.cost_usd += float(usage.get("cost_usd") or 0.0)
    return _summary(by_model)


@contextmanager
def metered() -> Iterator[UsageMeter]:
    """Open a meter for the code inside the block (and the tasks it starts), nested in any outer meter."""
    meter = UsageMeter()
    token = _ACTIVE.set((*_ACTIVE.get(), meter))
    try:
        yield meter
    finally:
        _ACTIVE.reset(token)


def record_llm_usage(reply: LLMReply) -> None:
    """Add one completion to every meter active in the current context (a no-op outside any run)."""
    for meter in _ACTIVE.get():
        meter.add(reply)


@contextmanager
def usage_sink(sink: UsageSink) -> Iterator[None]:
    """Hand every completion made inside the block (and the tasks it starts) to `sink` as it arrives."""
    token = _SINKS.set((*_SINKS.get(), sink))
    try:
        yield
    finally:
        _SINKS.reset(token)


async def deliver_llm_usage(replies: Sequence[LLMReply]) -> None:
    """Await every sink active in the current context for each reply (a no-op outside any)."""
    for sink in _SINKS.get():
        for reply in replies:
            await sink(reply)
