"""Real Celery worker processes for tests and benchmarks: broker probes, `csm worker` subprocesses, run polling.

Each worker is `csm worker` in its own OS process (its own session, so a SIGKILL takes its whole group).
Tests give every cluster a unique queue and tenant, and purge the queue first: the brokers are shared.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import create_engine, text

REPO = Path(__file__).resolve().parents[2]
RABBITMQ_URL = os.environ.get("CSM_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
REDIS_BROKER_BASE = os.environ.get("CSM_TEST_REDIS_BROKER_URL", "redis://127.0.0.1:6379")
CLI = "from src.app.cli import main; main()"


def broker_unavailable(url: str) -> str | None:
    """Why a broker at `url` cannot be reached over TCP, or None."""
    parts = urlsplit(url)
    port = parts.port or (5672 if parts.scheme.startswith("amqp") else 6379)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=2):
            return None
    except OSError as error:
        return f"broker {parts.scheme}://{parts.hostname}:{port} is not available: {error}"


def redis_db_url(db: int) -> str:
    """A Redis URL on database `db` of the test Redis server."""
    return f"{REDIS_BROKER_BASE.rstrip('/')}/{db}"


def cluster_env(
    *,
    broker_url: str,
    database_url: str,
    data_dir: Path,
    llm_base: str,
    limits_url: str,
    requests_per_min: float,
    rate_window_s: int,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of a test cluster: a unique queue and tenant, PostgreSQL, the local LLM server."""
    tag = uuid.uuid4().hex[:10]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSM_")}
    env |= {
        "PYTHONPATH": str(REPO),
        "CSM_EXECUTOR": "celery",
        "CSM_BROKER_URL": broker_url,
        "CSM_WORKER_QUEUE": f"csm-test-{tag}",
        "CSM_TENANT_ID": f"test-{tag}",
        "CSM_DATABASE_URL": database_url,
        "CSM_DATA_DIR": str(data_dir),
        "CSM_LLM_MODEL": "openai/csm-test",
        "CSM_LLM_API_BASE": llm_base,
        "CSM_LLM_API_KEY": "sk-local-test",
        "CSM_LLM_RESPONSE_FORMAT": "json_schema",
        "CSM_LLM_REQUESTS_PER_MIN": str(requests_per_min),
        "CSM_LLM_RATE_WINDOW_S": str(rate_window_s),
        "CSM_LLM_CONCURRENCY": "16",
        "CSM_RATE_LIMIT_URL": limits_url,
        "LITELLM_MODE": "PRODUCTION",
    }
    return env | dict(extra or {})


def purge_queue(env: Mapping[str, str]) -> None:
    """Empty the cluster's queue on its broker (a fresh queue name is empty; this makes sure)."""
    code = "from src.app.workers.app import app; app.control.purge()"
    subprocess.run([sys.executable, "-c", code], env=dict(env), cwd=REPO, check=True, timeout=60)


@dataclass
class Worker:
    """One `csm worker` process and its log."""

    process: subprocess.Popen[bytes]
    log: Path
    name: str

    def kill(self) -> None:
        """SIGKILL the worker's whole process group (no warm shutdown, nothing acknowledged)."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        """Warm stop (SIGTERM), then SIGKILL if it lingers."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()


@dataclass
class Cluster:
    """Worker processes started with one environment."""

    env: dict[str, str]
    folder: Path
    workers: list[Worker] = field(default_factory=list)

    def start(self, count: int, *, concurrency: int, timeout_s: float = 90.0) -> list[Worker]:
        """Start `count` workers and wait until each says it is ready."""
        started = []
        for index in range(count):
            name = f"w{len(self.workers) + 1}-{uuid.uuid4().hex[:6]}@%h"
            log = self.folder / f"worker-{len(self.workers) + 1}.log"
            argv = [sys.executable, "-c", CLI, "worker", "--concurrency", str(concurrency), "--name", name]
            with log.open("wb") as handle:
                process = subprocess.Popen(
                    argv, env=self.env, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
                )
            worker = Worker(process, log, name)
            self.workers.append(worker)
            started.append(worker)
            del index
        deadline = time.monotonic() + timeout_s
        for worker in started:
            while " ready." not in worker.log.read_text(errors="replace"):
                if worker.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"worker did not start:\n{worker.log.read_text(errors='replace')[-3000:]}")
                time.sleep(0.2)
        return started

    def stop(self) -> None:
        """Stop every worker still running."""
        for worker in self.workers:
            worker.stop()

    def csm(self, *args: str, timeout_s: float = 300.0) -> subprocess.CompletedProcess[str]:
        """Run a `csm` command with the cluster's environment."""
        return subprocess.run(
            [sys.executable, "-c", CLI, *args],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )


class RunWatch:
    """Reads a run's row and its task outcomes straight from PostgreSQL."""

    def __init__(self, database_url: str) -> None:
        self._engine = create_engine(database_url)

    def close(self) -> None:
        """Dispose of the connection pool."""
        self._engine.dispose()

    def recorded(self) -> int:
        """Task outcomes recorded so far (all runs)."""
        with self._engine.connect() as connection:
            return int(connection.execute(text("SELECT count(*) FROM run_tasks")).scalar_one())

    def run(self, job_id: str) -> dict[str, Any] | None:
        """The latest run row of `job_id`, or None."""
        query = text("SELECT status, summary FROM runs WHERE job_id = :job ORDER BY started_at DESC LIMIT 1")
        with self._engine.connect() as connection:
            row = connection.execute(query, {"job": job_id}).mappings().first()
        return None if row is None else dict(row)

    def wait_finished(self, job_id: str, *, timeout_s: float) -> dict[str, Any]:
        """Poll until the run is no longer running; its row."""
        deadline = time.monotonic() + timeout_s
        while True:
            run = self.run(job_id)
            if run is not None and run["status"] != "running":
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"run of {job_id} still {run} after {timeout_s} s")
            time.sleep(0.25)

    def counts(self, table: str) -> dict[str, int]:
        """Rows per account in `table` (qbr_pages, drafts)."""
        with self._engine.connect() as connection:
            rows = connection.execute(text(f"SELECT account_id, count(*) FROM {table} GROUP BY account_id"))  # noqa: S608
            return {str(account): int(n) for account, n in rows}

    def active_accounts(self) -> list[str]:
        """Every account the quarterly job covers."""
        with self._engine.connect() as connection:
            return [str(a) for a in connection.execute(text("SELECT account_id FROM accounts")).scalars()]


def max_in_window(times: list[float], window_s: float) -> int:
    """The most arrivals in any `window_s`-long window (each window starting at an arrival)."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, moment in enumerate(ordered):
        while ordered[start] <= moment - window_s:
            start += 1
        best = max(best, end - start + 1)
    return best
