"""`csm import` of generated books: wall time and peak RSS per format and size, in fresh processes.

`python -m bench.importer [--rows 10000 100000] [--formats csv json jsonl book]`. Rows are the sample book's
accounts repeated under new ids. Targets (issue 17): <= 10 s and <= 300 MB for 100,000 rows of each format, and
the time of the largest size within 12x of ten times fewer rows (linear). Each import also reports its CPU
seconds and the load average after it: on a shared machine the wall time is an upper bound.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path
from time import perf_counter
from typing import Any

from bench.common import REPO, ChildPeaks, emit
from src.app.data.sample_book import load_sample_book

TARGET_S = 10.0
TARGET_RSS_MB = 300.0
LINEAR_RATIO = 12.0
FORMATS = ("csv", "json", "jsonl", "book")


def generated_rows(count: int) -> list[dict[str, Any]]:
    """`count` account records: the sample book repeated under fresh ids."""
    book = load_sample_book(today=date.today())
    return [{**book[i % len(book)], "account_id": f"bench-{i:07d}"} for i in range(count)]


def write_file(rows: list[dict[str, Any]], fmt: str, folder: Path) -> Path:
    """The rows as one import file of format `fmt`."""
    if fmt == "jsonl":
        path = folder / "book.jsonl"
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    elif fmt == "json":
        path = folder / "book.json"
        path.write_text("[\n" + ",\n".join(json.dumps(row) for row in rows) + "\n]\n")
    elif fmt == "book":
        path = folder / "book_file.json"
        path.write_text(json.dumps({"as_of": date.today().isoformat(), "accounts": rows}, indent=1))
    else:
        path = folder / "book.csv"
        columns = sorted({key for row in rows for key in row})
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, columns)
            writer.writeheader()
            for row in rows:
                writer.writerow({k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in row.items()})
    return path


def timed_import(path: Path, data_dir: Path) -> dict[str, Any]:
    """Wall seconds, CPU seconds (user + system, all threads), peak RSS and the load of one `csm import`."""
    command = [sys.executable, "-c", "from src.app.cli import main; main()", "import", str(path)]
    command += ["--data-dir", str(data_dir), "--json"]
    with ChildPeaks() as peaks:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = perf_counter()
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
        wall = perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1):  # 1: some rows were rejected (the sample book has deliberately bad ones)
        raise RuntimeError(f"import failed ({done.returncode}): {done.stderr[-2000:]}")
    report = json.loads(done.stdout)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    result = {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "peak_rss_mb": peaks.total_mb}
    result["load_1min"] = round(os.getloadavg()[0], 2)
    return result | {"imported": report["imported"], "rejected": len(report["errors"])}


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--formats", nargs="+", default=list(FORMATS), choices=FORMATS)
    args = parser.parse_args()
    sizes = sorted(args.rows)
    figures: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for size in sizes:
            rows = generated_rows(size)
            for fmt in args.formats:
                path = write_file(rows, fmt, folder)
                result = timed_import(path, folder / f"data-{fmt}-{size}")
                figures.setdefault(fmt, {})[str(size)] = result
                path.unlink()
    largest, smallest = str(sizes[-1]), str(sizes[0])
    targets: dict[str, bool] = {}
    for fmt, by_size in figures.items():
        top = by_size[largest]
        targets[f"{fmt}_time"] = top["wall_s"] <= TARGET_S
        targets[f"{fmt}_rss"] = top["peak_rss_mb"] <= TARGET_RSS_MB
        if len(sizes) > 1:
            ratio = top["wall_s"] / by_size[smallest]["wall_s"]
            by_size["growth_ratio"] = round(ratio, 2)
            targets[f"{fmt}_linear"] = ratio <= LINEAR_RATIO * (sizes[-1] / sizes[0]) / 10
    emit("importer", {"rows": sizes, "formats": figures, "targets": targets})


if __name__ == "__main__":
    main()
