"""Run every benchmark in fresh processes, collect their JSON lines in `bench/results.jsonl`, rewrite RESULTS.md.

`python -m bench.run_all` (what `make bench` runs). Benchmarks whose module is not there yet are skipped and
listed as not measured, and so is `bench.distributed` when PostgreSQL, Redis or RabbitMQ does not answer.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from time import perf_counter

from bench.common import REPO, run_child
from bench.report import write_report

RESULTS = REPO / "bench" / "results.jsonl"
SCAN_SIZES = (1_000, 10_000, 100_000)
PLAN: tuple[tuple[str, tuple[str, ...]], ...] = (
    *(("bench.scan", ("--accounts", str(size))) for size in SCAN_SIZES),
    ("bench.scaling", ("--sizes", "1000,3000,10000,30000,100000", "--reuse", str(RESULTS))),
    ("bench.notion", ("--accounts", "1000")),
    ("bench.llm_fanout", ("--accounts", "500")),
    ("bench.cold_start", ()),
    ("bench.importer", ("--rows", "10000", "100000")),
    ("bench.cli_latency", ()),
    ("bench.distributed", ()),
)
TIMEOUTS_S = {"bench.distributed": 3600.0}
"""Benchmarks that may run longer than `run_child`'s default (six runs of ~2 min on fresh workers)."""


def services_unavailable(module: str) -> str | None:
    """Why a benchmark that needs local servers cannot run here, or None."""
    if module != "bench.distributed":
        return None
    from bench.distributed import unavailable

    return unavailable()


def main() -> None:
    """Run the plan in order; a benchmark that fails stops the run (its stderr is shown)."""
    RESULTS.write_text("")
    started = perf_counter()
    for module, args in PLAN:
        if importlib.util.find_spec(module) is None:
            print(f"skip {module}: not written yet", file=sys.stderr)
            continue
        if (reason := services_unavailable(module)) is not None:
            print(f"skip {module}: {reason}", file=sys.stderr)
            continue
        print(f"run  {module} {' '.join(args)}", file=sys.stderr, flush=True)
        step = perf_counter()
        record = run_child(module, *args, timeout_s=TIMEOUTS_S.get(module, 600))
        record["command"] = f"python -m {module} {' '.join(args)}".strip()
        record["wall_s"] = round(perf_counter() - step, 1)
        with RESULTS.open("a") as out:
            out.write(json.dumps(record) + "\n")
    total = perf_counter() - started
    write_report(RESULTS, REPO / "bench" / "RESULTS.md", total_s=total)
    print(f"all benchmarks: {total:.0f} s; wrote bench/RESULTS.md", file=sys.stderr)


if __name__ == "__main__":
    main()
