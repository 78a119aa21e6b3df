"""Browser tests of the review desk: a live uvicorn server on a seeded store, Playwright on Debian's Chromium.

Skipped with a reason when Playwright is not installed or /usr/bin/chromium is absent (`apt-get install
chromium`; never `playwright install`, which downloads a browser from a CDN).
"""

from __future__ import annotations

import importlib.util
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
HAVE_PLAYWRIGHT = (
    importlib.util.find_spec("playwright") is not None and importlib.util.find_spec("pytest_playwright") is not None
)

if not HAVE_PLAYWRIGHT:
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's Chromium under Playwright, for this module only.

    Not pytest-playwright's session-scoped browser: Playwright's sync API keeps an event loop running while it
    is started, which would stop every later asyncio test in the session from running.
    """
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
    try:
        yield browser
    finally:
        browser.close()
        playwright.stop()


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    """A fresh browser context and page per test (its own cookies)."""
    context = chromium.new_context(viewport={"width": 1360, "height": 900})
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(scope="module")
def desk_data(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from src.app.config import CSMSettings
    from tests.desk.seeding import seed

    folder = tmp_path_factory.mktemp("desk")
    settings = CSMSettings(data_dir=folder / "data", database_url=None, draft_review="hold", _env_file=None)  # type: ignore[call-arg]
    return seed(settings)


@pytest.fixture(scope="module")
def live_server(desk_data: Any) -> Iterator[str]:
    import uvicorn

    from src.app.desk.app import create_app

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(desk_data), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
