"""Scaling curve of the daily scan: seconds and peak RSS from 1k to 100k accounts, a linear fit, and a plot.

`python -m bench.scaling [--sizes 1000,3000,10000,30000,100000,1000000] [--runs 5] [--reuse results.jsonl]`

Each size is measured by `bench.scan` in its own processes (the scan runs in one process; scans measured with
the helper processes of earlier versions are plotted too when `--reuse` holds them).
`--reuse` takes sizes already measured in one process from a file of benchmark JSON lines. The scan is linear
when a least-squares line `seconds = fixed + per_account * N` explains the medians (R² ≥ 0.99) and the marginal
cost per account between neighbouring sizes stays within ±25 % of the fitted slope for sizes of at least 10k
(below that the fixed cost of the alerts dominates). Writes `bench/scaling.png`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench.common import MIN_RUNS, REPO, emit, run_child

DEFAULT_SIZES = (1_000, 3_000, 10_000, 30_000, 100_000)
MIN_R_SQUARED = 0.99
MARGINAL_BAND = 0.25
MARGINAL_FROM = 10_000
PLOT = REPO / "bench" / "scaling.png"
MILLION = 1_000_000
TARGET_RSS_MB_1M = 1024.0
"""Peak RSS allowed for a scan of a million accounts (issue 17)."""


def scan_records(path: Path | None) -> list[dict[str, Any]]:
    """The `bench.scan` JSON lines of a results file (none when there is no file)."""
    if path is None or not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [record for record in records if record.get("benchmark") == "scan"]


def one_process(record: dict[str, Any]) -> bool:
    """Whether a scan was measured in its own process only (set so, or too small a book for helpers)."""
    return record.get("scan_processes") == 1 or record.get("peak_rss_helpers_mb", 0) == 0


def measured_points(sizes: list[int], runs: int, reuse: Path | None) -> list[dict[str, Any]]:
    """One single-process `bench.scan` JSON line per size, reused from `reuse` where it holds that size."""
    known = {record["accounts"]: record for record in scan_records(reuse) if one_process(record)}
    args = ("--runs", str(runs), "--baseline-sample", "0", "--no-loop")
    return [known.get(size) or run_child("bench.scan", "--accounts", str(size), *args) for size in sizes]


def linear_fit(xs: list[float], ys: list[float]) -> tuple[float, float, float]:
    """Least squares `y = intercept + slope * x`: (intercept, slope, R²)."""
    n = len(xs)
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sxx
    intercept = mean_y - slope * mean_x
    total = sum((y - mean_y) ** 2 for y in ys)
    residual = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys, strict=True))
    return intercept, slope, 1 - residual / total if total else 1.0


def marginal_costs(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Seconds per extra account between neighbouring sizes."""
    return [
        {
            "from": low["accounts"],
            "to": high["accounts"],
            "us_per_account": round(1e6 * (high["seconds"] - low["seconds"]) / (high["accounts"] - low["accounts"]), 2),
        }
        for low, high in zip(points, points[1:], strict=False)
    ]


def plot(points: list[dict[str, Any]], intercept: float, slope: float, helped: list[dict[str, Any]]) -> None:
    """Seconds (median, min–max bars, fitted line) and peak RSS against book size; `helped`: default scans."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [p["accounts"] for p in points]
    medians = [p["seconds"] for p in points]
    low = [p["seconds"] - p["seconds_range"][0] for p in points]
    high = [p["seconds_range"][1] - p["seconds"] for p in points]
    figure, (time_axis, rss_axis) = plt.subplots(1, 2, figsize=(10, 4))
    time_axis.errorbar(sizes, medians, yerr=[low, high], fmt="o", capsize=3, label="one process: median (min–max)")
    time_axis.plot([0, max(sizes)], [intercept, intercept + slope * max(sizes)], "--", label="linear fit")
    if helped:
        helped_sizes = [p["accounts"] for p in helped]
        time_axis.plot(helped_sizes, [p["seconds"] for p in helped], "s", label="default: with helper processes")
        rss_axis.plot(helped_sizes, [p["peak_rss_mb"] for p in helped], "s", label="with helper processes")
    time_axis.set(xlabel="accounts", ylabel="daily scan, seconds", title="Scan time")
    time_axis.legend()
    rss_axis.plot(sizes, [p["peak_rss_mb"] for p in points], "o-", label="one process")
    rss_axis.set(xlabel="accounts", ylabel="peak RSS, MiB", title="Peak memory (all processes)")
    for axis in (time_axis, rss_axis):
        axis.grid(alpha=0.3)
        axis.legend()
        axis.set_xlim(left=0)
        axis.set_ylim(bottom=0, top=axis.get_ylim()[1] * 1.1)
    figure.tight_layout()
    figure.savefig(PLOT, dpi=110)
    plt.close(figure)


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)))
    parser.add_argument("--runs", type=int, default=MIN_RUNS)
    parser.add_argument("--reuse", type=Path, default=None, help="File of benchmark JSON lines to take sizes from.")
    args = parser.parse_args()
    sizes = sorted({int(size) for size in args.sizes.split(",")})
    if len(sizes) < 3:
        parser.error("--sizes needs at least three sizes for a fit")
    points = measured_points(sizes, args.runs, args.reuse)
    intercept, slope, r_squared = linear_fit([p["accounts"] for p in points], [p["seconds"] for p in points])
    marginal = marginal_costs(points)
    in_band = [
        abs(step["us_per_account"] / (slope * 1e6) - 1) <= MARGINAL_BAND
        for step in marginal
        if step["from"] >= MARGINAL_FROM
    ]
    helped = [record for record in scan_records(args.reuse) if not one_process(record)]
    plot(points, intercept, slope, helped)
    emit(
        "scaling",
        {
            "points": [
                {key: p[key] for key in ("accounts", "seconds", "seconds_range", "runs", "peak_rss_mb")} for p in points
            ],
            "fit_fixed_s": round(intercept, 3),
            "fit_us_per_account": round(slope * 1e6, 2),
            "r_squared": round(r_squared, 5),
            "marginal": marginal,
            "plot": str(PLOT.relative_to(REPO)),
            "with_helpers": [{key: p[key] for key in ("accounts", "seconds", "peak_rss_mb")} for p in helped],
            "targets": {
                "linear_r2": r_squared >= MIN_R_SQUARED,
                "marginal_within_band": all(in_band),
                **{
                    f"peak_rss_mb_{p['accounts']}": p["peak_rss_mb"] <= TARGET_RSS_MB_1M
                    for p in points
                    if p["accounts"] >= MILLION
                },
            },
        },
    )


if __name__ == "__main__":
    main()
