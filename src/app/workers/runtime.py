"""`WorkerRuntime`: the one event loop a worker process keeps, and the agent built on it once.

The loop runs on its own thread; Celery's pool threads (or the one solo/prefork child) hand coroutines to it
and wait for their results, so every task of a process shares one loop, one database pool, one LLM service and
its limits. The runtime is built on the first task after a fork (the pid is checked), never at import time.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from typing import Any, TypeVar

import structlog

from src.app.agents.customer_success.agent import CustomerSuccessAgent
from src.app.agents.runtime import open_agent
from src.app.config import OFFLINE_MODEL, CSMSettings
from src.app.tools.store import RunLedger

T = TypeVar("T")
log = structlog.get_logger(__name__)

CLOSE_TIMEOUT_S = 30.0

Work = Callable[[CustomerSuccessAgent, RunLedger], Coroutine[Any, Any, T]]


class WorkerRuntime:
    """A process's event loop thread and fully wired agent, built once, closed on worker shutdown."""

    def __init__(self, settings: Callable[[], CSMSettings] | None = None) -> None:
        self._settings = settings or worker_settings
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stack: AsyncExitStack | None = None
        self._agent: CustomerSuccessAgent | None = None
        self._ledger: RunLedger | None = None

    def call(self, work: Work[T]) -> T:
        """Run `work(agent, ledger)` on the process's loop and return its result (raising what it raised)."""
        loop = self._ready()
        assert self._agent is not None and self._ledger is not None
        return asyncio.run_coroutine_threadsafe(work(self._agent, self._ledger), loop).result()

    def warm(self) -> None:
        """Build the loop and agent now, and set up the LLM client, so the first task pays for neither.

        The client's first completion does set-up work (provider modules, request building) that would otherwise
        fall between the shared pacer's admission and the request reaching the provider, where a late arrival
        can put two windows' requests into one.
        """
        loop = self._ready()
        if self._agent is not None and self._agent.settings.llm_model != OFFLINE_MODEL:
            asyncio.run_coroutine_threadsafe(_warm_llm_client(self._agent.settings.llm_model), loop).result()

    def close(self) -> None:
        """Close the agent's clients and stop the loop (idempotent; only in the process that built them)."""
        with self._lock:
            loop, thread, stack = self._loop, self._thread, self._stack
            if loop is None or thread is None or self._pid != os.getpid():
                return
            self._loop = self._thread = self._stack = self._agent = self._ledger = None
            self._pid = None
        if stack is not None:
            asyncio.run_coroutine_threadsafe(stack.aclose(), loop).result(timeout=CLOSE_TIMEOUT_S)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=CLOSE_TIMEOUT_S)
        loop.close()

    def _ready(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._pid == os.getpid() and self._loop is not None:
                return self._loop
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="csm-worker-loop", daemon=True)
            thread.start()
            asyncio.run_coroutine_threadsafe(self._open(), loop).result()
            self._loop, self._thread, self._pid = loop, thread, os.getpid()
            return loop

    async def _open(self) -> None:
        settings = self._settings()
        stack = AsyncExitStack()
        agent, store = await stack.enter_async_context(open_agent(settings))
        if not isinstance(store, RunLedger):
            await stack.aclose()
            raise TypeError(
                f"Celery workers record run progress in the SQL store; {type(store).__name__} cannot "
                "(set CSM_DATABASE_URL to the PostgreSQL store the scheduler uses)"
            )
        self._stack, self._agent, self._ledger = stack, agent, store
        log.info("worker_runtime_ready", pid=os.getpid(), llm=repr(agent.settings.llm_model))


async def _warm_llm_client(model: str) -> None:
    """Import litellm and make one mocked completion on this loop: nothing is sent, nothing is counted."""
    from src.app.tools.llm.litellm_service import load_litellm

    litellm = await asyncio.to_thread(load_litellm)
    await litellm.acompletion(model=model, messages=[{"role": "user", "content": "ready?"}], mock_response="{}")


def worker_settings() -> CSMSettings:
    """The environment's settings as a worker uses them: limits always shared, whatever `CSM_EXECUTOR` says."""
    return CSMSettings(executor="celery")
