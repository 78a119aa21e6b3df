"""Shared benchmark helpers: run statistics, peak RSS, machine facts, fresh child processes, the JSON line."""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
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
    own = _high_water_mb("self")
    return own if own is not None else round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


class ChildPeaks:
    """The peak RSS (VmHWM) of every child process that lives during the block, sampled every `interval_s`.

    `total_mb` adds up the children's peaks: an upper bound of what they held at once.
    """

    def __init__(self, interval_s: float = 0.05) -> None:
        self._interval_s = interval_s
        self._peaks: dict[int, float] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> ChildPeaks:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()

    @property
    def total_mb(self) -> float:
        """The sum of every sampled child's peak RSS, in MiB."""
        return round(sum(self._peaks.values()), 1)

    def _sample(self) -> None:
        while not self._done.wait(self._interval_s):
            for pid in _children(os.getpid()):
                peak = _high_water_mb(str(pid))
                if peak is not None:
                    self._peaks[pid] = max(peak, self._peaks.get(pid, 0.0))


def _children(parent: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if len(fields) > 1 and int(fields[1]) == parent:
            found.append(int(stat.parent.name))
    return found


def _high_water_mb(pid: str) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


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


def run_child(module: str, *args: str, timeout_s: float = 600, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `python -m <module> <args>` in a fresh process (with `env` added to the environment) and return the
    JSON object of its last stdout line."""
    completed = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
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
