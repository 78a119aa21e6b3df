"""`csm --help` answers at once: the CLI's modules load no store, graph, settings or model library up front."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("sqlalchemy", "langgraph", "litellm", "pydantic_settings", "numpy", "src.app.context", "src.app.desk.app")


def test_importing_the_cli_loads_nothing_heavy() -> None:
    code = f"import sys\nimport src.app.cli\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_help_lists_every_command_group() -> None:
    code = "import sys\nsys.argv = ['csm', '--help']\nfrom src.app.cli import main\nmain()\n"
    env = {**os.environ, "COLUMNS": "100"}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for command in ("scan", "qbr", "drafts", "accounts", "users", "scorecard", "backtest", "notion", "desk", "worker"):
        assert command in result.stdout, command
