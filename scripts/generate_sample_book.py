"""Regenerate the committed sample book, or write a book of any size: `python scripts/generate_sample_book.py`.

`--accounts N --output FILE` writes N generated accounts (dated today) elsewhere, e.g. for `csm import` or load
tests; without options it rewrites the committed 300-account book as of its fixed date.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

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
    args = parser.parse_args()
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
