"""What a person feels at the terminal: wall time of `csm scan` and `csm qbr` on a 1,000-account store, and `--help`.

`python -m bench.cli_latency [--runs 5]`. Each command runs in a fresh process, as a person would run it; the CPU
seconds (user + system) are reported beside the wall time because on a shared machine they move less. Targets
(issue 17): `csm scan` <= 1.5 s, `csm qbr ACCOUNT` on the offline writer <= 1.5 s, `csm --help` <= 0.3 s.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from time import perf_counter

from bench.common import MIN_RUNS, REPO, emit, stats
from bench.importer import generated_rows, write_file

TARGETS_S = {"scan": 1.5, "qbr": 1.5, "help": 0.3}
ACCOUNTS = 1_000


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one command in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = perf_counter()
    subprocess.run(command, cwd=REPO, env=env, check=True, capture_output=True)
    wall = perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=MIN_RUNS)
    args = parser.parse_args()
    csm = [sys.executable, "-c", "from src.app.cli import main; main()"]
    figures: dict[str, dict[str, dict[str, float | int]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "CSM_DATA_DIR": str(Path(tmp) / "data"), "CSM_LLM_MODEL": "offline/csm"}
        book = write_file(generated_rows(ACCOUNTS), "jsonl", Path(tmp))
        subprocess.run([*csm, "import", str(book)], cwd=REPO, env=env, capture_output=True, check=False)
        commands = {
            "scan": [*csm, "scan", "--json"],
            "qbr": [*csm, "qbr", "bench-0000005", "--json"],
            "help": [*csm, "--help"],
        }
        for name, command in commands.items():
            timed(command, env)  # warm-up: disk cache, first store migration
            samples = [timed(command, env) for _ in range(args.runs)]
            figures[name] = {"wall_s": stats([s[0] for s in samples], 3), "cpu_s": stats([s[1] for s in samples], 3)}
    targets = {f"{name}_s": figures[name]["wall_s"]["median"] <= limit for name, limit in TARGETS_S.items()}
    emit("cli_latency", {"accounts": ACCOUNTS, "commands": figures, "targets": targets})


if __name__ == "__main__":
    main()
