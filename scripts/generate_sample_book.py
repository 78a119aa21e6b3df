"""Regenerate the committed sample book, or write a book of any size: `python scripts/generate_sample_book.py`.

`--accounts N --output FILE` writes N generated accounts (dated today) elsewhere, e.g. for `csm import` or load
tests; without options it rewrites the committed 300-account book as of its fixed date.

`--history N --output FILE.csv [--seed S]` writes a churn history instead: N account snapshots, each with an
`as_of` date, a `churned` outcome and an `outcome_date`, drawn from the known hazard model of
`src.app.analysis.synthetic_history` (its `TRUE_WEIGHTS` are the ranking `csm backtest --suggest` should recover).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from src.app.analysis.synthetic_history import synthetic_history, write_history_csv
from src.app.data.sample_book import (
    SAMPLE_BOOK_AS_OF,
    SAMPLE_BOOK_FILE,
    SAMPLE_BOOK_SEED,
    SAMPLE_BOOK_SIZE,
    generate_accounts,
    render_sample_book,
)

OUTPUT = Path(__file__).resolve().parents[1] / "src" / "app" / "data" / SAMPLE_BOOK_FILE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=None, help="Book size (default: the committed book).")
    parser.add_argument("--output", type=Path, default=None, help="Where to write a book of --accounts accounts.")
    parser.add_argument("--history", type=int, default=None, help="Write a churn history of N accounts instead.")
    parser.add_argument("--seed", type=int, default=0, help="With --history: the random seed.")
    args = parser.parse_args()
    if args.history is not None:
        if args.output is None or args.accounts is not None or args.history < 1:
            parser.error("--history N (at least 1) goes with --output FILE.csv, without --accounts")
        rows = synthetic_history(args.history, seed=args.seed)
        write_history_csv(rows, args.output)
        churned = sum(bool(row["churned"]) for row in rows)
        print(f"wrote a history of {len(rows)} accounts ({churned} churned) to {args.output}")
        return
    if (args.accounts is None) != (args.output is None):
        parser.error("--accounts and --output go together")
    if args.accounts is not None and args.accounts < 1:
        parser.error(f"--accounts must be at least 1, got {args.accounts}")
    size, output = args.accounts or SAMPLE_BOOK_SIZE, args.output or OUTPUT
    as_of = SAMPLE_BOOK_AS_OF if args.output is None else datetime.now(UTC).date()
    accounts = generate_accounts(size, seed=SAMPLE_BOOK_SEED, as_of=as_of)
    output.write_text(render_sample_book(accounts, as_of=as_of), encoding="utf-8")
    print(f"wrote {len(accounts)} accounts as of {as_of} to {output}")


if __name__ == "__main__":
    main()
