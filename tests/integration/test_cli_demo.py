from __future__ import annotations

import asyncio
import email
import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from src.app.tools.store.sql import SQLStore

ROOT = Path(__file__).resolve().parents[2]


def run_csm(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CSM_DATA_DIR": str(cwd / "data"), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    env.pop("CSM_LLM_MODEL", None)
    return subprocess.run(
        [sys.executable, "-c", "from src.app.cli import main; main()", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_demo_runs_a_full_offline_day_and_writes_drafts(tmp_path: Path) -> None:
    demo_dir = tmp_path / "demo"
    done = run_csm("demo", "--data-dir", str(demo_dir), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["accounts"] == 300 and summary["scored"] > 200
    assert set(summary["rag_counts"]) == {"GREEN", "AMBER", "RED"}
    assert {e["account_id"] for e in summary["errors"]} and all(e["message"] for e in summary["errors"])
    assert summary["alerts_dispatched"] == 5 and summary["failed_tasks"] == []
    contract = summary["contract_check"]
    assert contract["status"] == "succeeded" and contract["rechecked"] > 0 and contract["qbrs"] > 0
    assert len(summary["qbrs"]) == 5 and summary["opportunities"] > 0 and summary["adoption_reports"] == 5
    drafts = sorted((demo_dir / "outbox" / "drafts").glob("*.eml"))
    assert len(drafts) == summary["drafts"] >= 5 + 5 + 5
    for path in drafts:
        message = email.message_from_bytes(path.read_bytes())
        assert message["To"].endswith("@example.com") and message["X-Unsent"] == "1"
    assert list((demo_dir / "outbox" / "chat").glob("*.jsonl"))


def test_demo_table_output_and_scan_on_an_empty_store(tmp_path: Path) -> None:
    shown = run_csm("demo", "--data-dir", str(tmp_path / "demo"), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert "Account health" in shown.stdout and "RED" in shown.stdout and "nothing was sent" in shown.stdout
    scanned = run_csm("scan", "--json", "--data-dir", str(tmp_path / "fresh"), cwd=tmp_path)
    assert scanned.returncode == 0, scanned.stderr[-3000:]
    result = json.loads(scanned.stdout)
    assert result["task_type"] == "health_scan" and result["scanned_count"] >= 250


def test_scheduler_run_now_twice_alerts_once(tmp_path: Path) -> None:
    args = ("scheduler", "--run-now", "csm_daily_health_scan", "--json", "--data-dir", str(tmp_path / "s"))
    first, second = run_csm(*args, cwd=tmp_path), run_csm(*args, cwd=tmp_path)
    assert first.returncode == 0 and second.returncode == 0, first.stderr[-2000:] + second.stderr[-2000:]
    ran, skipped = json.loads(first.stdout), json.loads(second.stdout)
    assert ran["status"] == "succeeded" and ran["alerts"] == 5
    assert skipped["status"] == "skipped" and "already completed" in skipped["reason"]
    drafts = list((tmp_path / "s" / "outbox" / "drafts").glob("*.eml"))
    assert len(drafts) == 5 + ran["digests"] and ran["digests"] >= 1  # five alerts, one digest per owner
    unknown = run_csm("scheduler", "--run-now", "nightly", cwd=tmp_path)
    assert unknown.returncode != 0 and "unknown job 'nightly'" in unknown.stderr


def test_foreground_scheduler_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, "CSM_DATA_DIR": str(tmp_path / "data"), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    process = subprocess.Popen(
        [sys.executable, "-u", "-c", "from src.app.cli import main; main()", "scheduler"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if "Scheduler running" in line:
            break
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err[-2000:]
    shown = "".join(lines) + out
    for job in ("csm_daily_health_scan", "csm_daily_contract_check", "csm_quarterly_qbr"):
        assert job in shown
    assert "Scheduler stopped." in out and "Traceback" not in err


def test_a_killed_runs_lease_is_taken_over_only_when_asked(tmp_path: Path) -> None:
    """A run whose process died holds its occurrence for the lease; `--take-over` claims it at once."""
    data_dir = tmp_path / "s"
    args = ("scheduler", "--run-now", "csm_daily_health_scan", "--json", "--data-dir", str(data_dir))
    first = run_csm(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    key = json.loads(first.stdout)["key"]
    store = SQLStore(f"sqlite:///{data_dir / 'csm.sqlite'}")
    try:
        now = datetime.now(UTC)
        forced = asyncio.run(
            store.claim_run(
                "csm_daily_health_scan", key, owner="killed", lease_until=now + timedelta(hours=2), now=now, force=True
            )
        )
        assert forced.run_id is not None
    finally:
        asyncio.run(store.aclose())
    blocked = json.loads(run_csm(*args, cwd=tmp_path).stdout)
    assert (
        blocked["status"] == "skipped" and "held by killed" in blocked["reason"] and "--take-over" in blocked["reason"]
    )
    taken = run_csm(*args, "--take-over", cwd=tmp_path)
    assert taken.returncode == 0, taken.stderr[-2000:]
    outcome = json.loads(taken.stdout)
    assert outcome["status"] == "succeeded" and outcome["resumed"] is True
    assert outcome["alerts"] == 0  # the first run's alerts are not raised again
