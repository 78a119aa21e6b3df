"""Shared fixtures: a network guard, a fixed clock, and a graph context wired with fakes on a real store."""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
from hypothesis import HealthCheck, settings

from src.app.analysis.health import CSMHealthScorer
from src.app.config import CSMSettings
from src.app.context import CSMContext
from src.app.tools.store.sql import SQLStore
from tests.support.fakes import Fakes, RecordingChat, RecordingEvents, RecordingMail, RecordingSales, ScriptedLLM
from tests.support.servers import postgres_url  # noqa: F401 - fixture: a fresh PostgreSQL schema (or a skip)

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
settings.register_profile("csm", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("csm")  # property tests check results; time limits belong in bench/, not in a loaded CI
NOW = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)


@pytest.fixture(scope="session")
def session_logging() -> tuple[dict[str, Any], list[logging.Handler]]:
    """structlog's configuration and the root handlers as the session started, before any fixture ran the CLI."""
    return structlog.get_config(), list(logging.root.handlers)


@pytest.fixture(autouse=True)
def logging_restored(session_logging: tuple[dict[str, Any], list[logging.Handler]]) -> Iterator[None]:
    """Every test starts and ends with the session's own logging.

    An in-process CLI run points structlog at a captured stderr and filters below its `--log-level`; a
    module-scoped fixture that runs the CLI does so before any test's own fixtures, and what it set would else
    carry over (`capture_logs` then saw no info events in later modules).
    """
    saved, handlers = session_logging
    structlog.configure(**saved)
    logging.root.handlers[:] = handlers
    yield
    structlog.configure(**saved)
    logging.root.handlers[:] = handlers


@pytest.fixture(autouse=True)
def no_external_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Any connection to a non-loopback address fails the test: no real LLM or API call can slip out."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and not _is_loopback(host):
            raise ConnectionRefusedError(f"tests may not reach external hosts (tried {host})")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    yield


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture
def settings(tmp_path: Path) -> CSMSettings:
    return CSMSettings(data_dir=tmp_path / "data", database_url=None, _env_file=None)  # type: ignore[call-arg]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLStore]:
    sql_store = SQLStore(f"sqlite:///{tmp_path / 'store.sqlite'}")
    yield sql_store
    await sql_store.aclose()


@pytest.fixture
def llm() -> ScriptedLLM:
    return ScriptedLLM()


@pytest.fixture
def fakes(store: SQLStore, llm: ScriptedLLM) -> Fakes:
    return Fakes(
        store=store,
        llm=llm,
        mail=RecordingMail(),
        chat=RecordingChat(),
        events=RecordingEvents(),
        sales=RecordingSales(),
    )


@pytest.fixture
def ctx(settings: CSMSettings, fakes: Fakes) -> CSMContext:
    return CSMContext(
        settings=settings,
        store=fakes.store,
        llm=fakes.llm,
        mail=fakes.mail,
        chat=fakes.chat,
        events=fakes.events,
        scorer=CSMHealthScorer(),
        sales=fakes.sales,
        clock=lambda: NOW,
    )
