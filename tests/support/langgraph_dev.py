"""A real `langgraph dev` server (LangGraph Studio's API) serving the repo's langgraph.json, offline, for tests.

The server runs the graphs on the embedded defaults of its own process, so the CSM_* environment given here
(a data dir, a review mode) is what the served graphs see; every CSM_* variable of the test process is dropped.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LANGGRAPH = Path(sys.executable).parent / "langgraph"
START_TIMEOUT_S = 60


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _config_for(folder: Path) -> Path:
    """The repo's langgraph.json with absolute paths, so the server's state (.langgraph_api/) stays in `folder`."""
    config = json.loads((ROOT / "langgraph.json").read_text(encoding="utf-8"))
    config["dependencies"] = [str(ROOT)]
    for spec in config["graphs"].values():
        spec["path"] = str(ROOT / spec["path"])
    path = folder / "langgraph.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def _answers_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ok", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def langgraph_dev(folder: Path, csm_env: dict[str, str]) -> Iterator[str]:
    """Serve langgraph.json from `folder` with `csm_env` as the only CSM_* variables; yield the server's URL.

    Skips when the `langgraph` CLI is missing or the server cannot start here; fails when it cannot load our graphs.
    """
    if not LANGGRAPH.exists():
        pytest.skip(
            f"langgraph dev cannot start: {LANGGRAPH} is missing (install the dev extra: pip install -e '.[dev]')"
        )
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSM_")}
    env.update(
        csm_env,
        LANGGRAPH_CLI_NO_ANALYTICS="1",
        LANGSMITH_TRACING="false",
        LITELLM_LOCAL_MODEL_COST_MAP="True",
    )
    command = [str(LANGGRAPH), "dev", "--no-browser", "--no-reload", "--host", "127.0.0.1", "--port", str(port)]
    log_path = folder / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [*command, "--config", str(_config_for(folder))],
            cwd=folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers_ok(url):
            if server.poll() is not None or time.monotonic() > deadline:
                why = f"exited with code {server.returncode}" if server.poll() is not None else "never answered /ok"
                log_tail = log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
                if "src/app" in log_tail or "GraphLoadError" in log_tail:
                    pytest.fail(f"langgraph dev could not load our graphs:\n{log_tail}")
                pytest.skip(f"langgraph dev cannot start here ({why} within {START_TIMEOUT_S} s):\n{log_tail}")
            time.sleep(0.25)
        yield url
    finally:
        _stop(server)


def server_log(folder: Path) -> str:
    """The last part of the server's log in `folder` (for assertion messages)."""
    return (folder / "server.log").read_text(encoding="utf-8", errors="replace")[-3000:]


def _stop(server: subprocess.Popen[bytes]) -> None:
    """Terminate the server's whole process group, killing it if it does not exit in time."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=5)
