"""First-run race: two processes starting together on a fresh store both succeed, and the work is done once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.hardening.conftest import ROOT, csm_env

WORKER = """
import asyncio, sys
from src.app.tools.store.sql import SQLStore
from src.app.tools.store import AuditEntry

async def main(url: str) -> None:
    store = SQLStore(url)
    await store.record_audit(AuditEntry(artifact="x", target="t", idempotency_key="once"))
    print(await store.count("audit_log"))
    await store.aclose()

asyncio.run(main(sys.argv[1]))
"""


def test_two_processes_on_a_fresh_sqlite_store_both_succeed_and_write_once(tmp_path: Path) -> None:
    for round_ in range(4):
        url = f"sqlite:///{tmp_path / f'fresh-{round_}.sqlite'}"
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", WORKER, url],
                cwd=ROOT,
                env=csm_env(tmp_path),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outputs = [process.communicate(timeout=120) for process in processes]
        for process, (out, err) in zip(processes, outputs, strict=True):
            assert process.returncode == 0, err[-2000:]
            assert out.strip() == "1"
