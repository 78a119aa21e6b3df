"""Helpers shared by the hardening tests: an agent on fakes and a fresh store per hypothesis example."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from tempfile import TemporaryDirectory

from src.app.agents.base import AgentRegistration
from src.app.agents.customer_success.agent import CustomerSuccessAgent
from src.app.analysis.health import CSMHealthScorer
from src.app.config import CSMSettings
from src.app.context import CSMContext
from src.app.tools.store.sql import SQLStore


def agent_on(ctx: CSMContext) -> CustomerSuccessAgent:
    """The public facade wired with the test context's clients (so fail-open results can be asserted)."""
    return CustomerSuccessAgent(
        AgentRegistration(agent_id="csm-hardening", name="CustomerSuccess", version="1.0", capabilities=[]),
        llm_service=ctx.llm,
        gmail_service=ctx.mail,
        chat_service=ctx.chat,
        event_bus=ctx.events,
        health_scorer=CSMHealthScorer(),
        sales_agent=ctx.sales,
        settings=ctx.settings,
        store=ctx.store,
    )


@asynccontextmanager
async def fresh_store() -> AsyncIterator[tuple[SQLStore, Path]]:
    """A new SQLite store in its own folder (hypothesis examples cannot share function-scoped fixtures)."""
    with TemporaryDirectory() as folder:
        store = SQLStore(f"sqlite:///{Path(folder) / 'store.sqlite'}")
        try:
            yield store, Path(folder)
        finally:
            await store.aclose()


def offline_settings(data_dir: Path, **values: object) -> CSMSettings:
    """Settings that ignore the developer's environment file."""
    return CSMSettings(data_dir=data_dir, database_url=None, _env_file=None, **values)  # type: ignore[call-arg]


ROOT = Path(__file__).resolve().parents[2]


def csm_env(data_dir: Path, **settings: str) -> dict[str, str]:
    """A subprocess environment with no developer CSM_* settings, the given data folder and extra settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CSM_")}
    return {**env, "CSM_DATA_DIR": str(data_dir), "LITELLM_LOCAL_MODEL_COST_MAP": "True", **settings}


def run_csm(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run the `csm` command in a fresh interpreter from the repository root."""
    return subprocess.run(
        [sys.executable, "-c", "from src.app.cli import main; main()", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
