"""Regenerate the committed sample book: `python -m scripts.generate_sample_book` from the repo root."""

from __future__ import annotations

from pathlib import Path

from src.app.sample_book import (
    SAMPLE_BOOK_AS_OF,
    SAMPLE_BOOK_FILE,
    SAMPLE_BOOK_SEED,
    SAMPLE_BOOK_SIZE,
    generate_accounts,
    render_sample_book,
)

OUTPUT = Path(__file__).resolve().parents[1] / "src" / "app" / "data" / SAMPLE_BOOK_FILE


def main() -> None:
    accounts = generate_accounts(SAMPLE_BOOK_SIZE, seed=SAMPLE_BOOK_SEED, as_of=SAMPLE_BOOK_AS_OF)
    OUTPUT.write_text(render_sample_book(accounts, as_of=SAMPLE_BOOK_AS_OF), encoding="utf-8")
    print(f"wrote {len(accounts)} accounts as of {SAMPLE_BOOK_AS_OF} to {OUTPUT}")


if __name__ == "__main__":
    main()
