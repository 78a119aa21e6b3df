"""Cold start: wall time of `csm --help` and of importing the agent module, each in a fresh process.

`python -m bench.cold_start [--runs 5]`. Also checks that importing the agent does not import litellm (it is
loaded on the first LLM call only).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from time import perf_counter

from bench.common import MIN_RUNS, REPO, emit, run_child, stats

TARGET_CLI_HELP_S = 0.3
AGENT_MODULE = "src.app.agents.customer_success.agent"
CSM = Path(sys.executable).with_name("csm")


def wall_times(command: list[str], runs: int) -> list[float]:
    """Wall seconds of `command` over `runs` fresh processes (after one untimed warm-up for the disk cache)."""
    samples = []
    for attempt in range(runs + 1):
        start = perf_counter()
        subprocess.run(command, cwd=REPO, check=True, capture_output=True)
        if attempt:
            samples.append(perf_counter() - start)
    return samples


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=MIN_RUNS)
    args = parser.parse_args()
    cli = stats(wall_times([str(CSM), "--help"], args.runs), 3)
    agent = stats(wall_times([sys.executable, "-c", f"import {AGENT_MODULE}"], args.runs), 3)
    bare = stats(wall_times([sys.executable, "-c", "pass"], args.runs), 3)
    check = run_child("bench.import_check", AGENT_MODULE)
    emit(
        "cold_start",
        {
            "cli_help_s": cli,
            "agent_import_s": agent,
            "python_startup_s": bare,
            "litellm_imported_by_agent_import": check["litellm_imported"],
            "modules_loaded_by_agent_import": check["modules"],
            "targets": {
                "cli_help_s": cli["median"] <= TARGET_CLI_HELP_S,
                "litellm_lazy": not check["litellm_imported"],
            },
        },
    )


if __name__ == "__main__":
    main()
