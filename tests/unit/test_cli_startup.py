"""`csm --help` answers at once: the CLI's modules load no store, graph, settings or model library up front."""

from __future__ import annotations

import json
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


SCAN_NEEDS_NONE_OF = ("numpy", "litellm", "pptx", "pygal", "jinja2", "src.app.graph.sales")
"""What a small book's `csm scan` does without: numpy (its import costs more than it saves under 2,000 accounts),
the real LLM client (the offline writer), the QBR writers, and the Sales graph (no hand-off in a scan)."""


def test_a_small_books_scan_loads_no_numpy_llm_client_document_writer_or_sales_graph(tmp_path: Path) -> None:
    code = (
        "import os, sys\n"
        "exit_now = os._exit\n"
        "def report(code):\n"
        f"    print('LOADED', sorted(m for m in {SCAN_NEEDS_NONE_OF!r} if m in sys.modules), file=sys.stderr)\n"
        "    exit_now(code)\n"
        "os._exit = report\n"
        "sys.argv = ['csm', 'scan', '--json']\n"
        "from src.app.cli import main\n"
        "main()\n"
    )
    env = {**os.environ, "CSM_DATA_DIR": str(tmp_path / "data"), "CSM_LLM_MODEL": "offline/csm"}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["health_scores"]
    assert result.stderr.strip().splitlines()[-1] == "LOADED []"


def test_the_csm_process_imports_a_commands_modules_without_collections_and_freezes_them() -> None:
    code = (
        "import gc, sys\n"
        "import src.app.cli as cli\n"
        "collections = []\n"
        "gc.callbacks.append(lambda phase, info: phase == 'start' and collections.append(info['generation']))\n"
        "cli._ONE_SHOT[0] = True\n"
        "frozen = gc.get_freeze_count()\n"
        "try:\n"
        "    with cli.modules_kept():\n"
        "        import src.app.cli.runs\n"
        "        raise RuntimeError('a failed import')\n"
        "except RuntimeError:\n"
        "    pass\n"
        "print(collections, gc.isenabled(), gc.get_freeze_count() > frozen + 100_000)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["[]", "True", "True"]


def test_in_another_process_the_commands_leave_the_collector_alone() -> None:
    import gc

    from src.app.cli import modules_kept

    frozen = gc.get_freeze_count()
    with modules_kept():
        assert gc.isenabled()
    assert gc.get_freeze_count() == frozen
