"""Shared benchmark helpers: run statistics, peak RSS, machine facts, fresh child processes, the JSON line."""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MIN_RUNS = 5


def stats(samples: Sequence[float], digits: int = 4) -> dict[str, float | int]:
    """Median, min and max of timed runs (at least one sample)."""
    if not samples:
        raise ValueError("stats() needs at least one sample")
    return {
        "median": round(statistics.median(samples), digits),
        "min": round(min(samples), digits),
        "max": round(max(samples), digits),
        "runs": len(samples),
    }


def peak_rss_mb() -> float:
    """This process's own peak resident set size so far, in MiB.

    Linux keeps `ru_maxrss` across `execve`, so a child started by a parent that once held 700 MB reports
    700 MB before it allocates anything. The kernel's high-water mark of the process's own memory map
    (`VmHWM` in /proc/self/status) starts afresh at exec; `ru_maxrss` is the fallback where /proc is absent.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def current_rss_mb() -> float:
    """This process's resident set size now, in MiB (from /proc; 0 where unavailable)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": _memory_gb(),
        "os": platform.platform(terse=True),
        "python": platform.python_version(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def run_child(module: str, *args: str, timeout_s: float = 600) -> dict[str, Any]:
    """Run `python -m <module> <args>` in a fresh process and return the JSON object of its last stdout line."""
    completed = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(args)} exited {completed.returncode}:\n{completed.stderr[-3000:]}")
    return last_json_line(completed.stdout)


def last_json_line(text: str) -> dict[str, Any]:
    """The JSON object on the last non-empty line of `text`."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise ValueError("no output where a JSON line was expected")
    value = json.loads(lines[-1])
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {lines[-1][:200]!r}")
    return value


def emit(benchmark: str, figures: dict[str, Any]) -> None:
    """Print the benchmark's one JSON line (always the last line of its output)."""
    print(json.dumps({"benchmark": benchmark, **figures, "machine": machine()}), flush=True)
