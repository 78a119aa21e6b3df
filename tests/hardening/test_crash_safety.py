"""Crash safety: a scan SIGKILLed part-way and restarted ends exactly where an uninterrupted scan ends."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.hardening.conftest import ROOT, csm_env

WORKER = [sys.executable, "-m", "tests.hardening.crash_worker"]
MAX_ALERTS = 5


def run_to_completion(data_dir: Path) -> dict[str, Any]:
    done = subprocess.run(
        [*WORKER, str(data_dir)], cwd=ROOT, env=csm_env(data_dir), capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.rsplit("done ", 1)[1])


def kill_after(data_dir: Path, step: str, occurrence: int) -> list[str]:
    """Start a slow scan and SIGKILL it right after it announces `step` for the `occurrence`-th time."""
    process = subprocess.Popen(
        [*WORKER, str(data_dir), "--slow"],
        cwd=ROOT,
        env=csm_env(data_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    seen: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            seen.append(line.strip())
            if sum(1 for s in seen if s.startswith(step)) == occurrence:
                os.kill(process.pid, signal.SIGKILL)
                break
    finally:
        process.kill()
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, seen
    assert not any(s.startswith("done") for s in seen)
    return seen


def final_state(data_dir: Path) -> dict[str, Any]:
    """Everything the scan leaves behind, with every duplicate made visible."""
    database = sqlite3.connect(data_dir / "csm.sqlite")
    try:
        state = {
            "integrity": database.execute("PRAGMA integrity_check").fetchone()[0],
            "journal_mode": database.execute("PRAGMA journal_mode").fetchone()[0],
            "scores_per_account": Counter(a for (a,) in database.execute("SELECT account_id FROM health_scores")),
            "alerts": sorted(database.execute("SELECT account_id, idempotency_key FROM alerts").fetchall()),
            "drafts": sorted(database.execute("SELECT draft_id, account_id, idempotency_key FROM drafts").fetchall()),
            "audit": Counter(k for (k,) in database.execute("SELECT idempotency_key FROM audit_log")),
        }
    finally:
        database.close()
    chat_files = (data_dir / "outbox" / "chat").glob("*.jsonl")
    chat_lines = [line for path in chat_files for line in path.read_text().splitlines()]
    state["chat"] = Counter(json.loads(line)["idempotency_key"] for line in chat_lines)
    state["eml_files"] = sorted(path.stem for path in (data_dir / "outbox" / "drafts").glob("*.eml"))
    return state


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    data_dir = tmp_path_factory.mktemp("uninterrupted")
    summary = run_to_completion(data_dir)
    assert summary["alerts"] == MAX_ALERTS
    return final_state(data_dir)


@pytest.mark.parametrize(("step", "occurrence"), [("llm", 1), ("drafted", 2)])
def test_a_killed_scan_restarted_ends_exactly_like_an_uninterrupted_one(
    tmp_path: Path, uninterrupted: dict[str, Any], step: str, occurrence: int
) -> None:
    kill_after(tmp_path, step, occurrence)
    killed = final_state(tmp_path)
    assert len(killed["scores_per_account"]) == 240  # scored and committed before the kill ...
    assert len(killed["drafts"]) == (occurrence if step == "drafted" else 0)  # ... then killed mid-alerts
    assert len(killed["alerts"]) < MAX_ALERTS
    run_to_completion(tmp_path)
    state = final_state(tmp_path)
    assert state["integrity"] == "ok" and state["journal_mode"] == "wal"
    scores = state["scores_per_account"]
    assert set(scores.values()) == {1} and len(scores) == 240 and "bad-adoption" not in scores
    assert len(state["alerts"]) == MAX_ALERTS and state["alerts"] == uninterrupted["alerts"]
    assert state["drafts"] == uninterrupted["drafts"]
    assert state["eml_files"] == sorted(draft_id for draft_id, _, _ in state["drafts"])
    assert set(state["chat"].values()) == {1} and state["chat"] == uninterrupted["chat"]
    assert set(state["audit"].values()) == {1} and state["audit"] == uninterrupted["audit"]
