"""The whole-book scan engine: pages of accounts scored and saved, scored at once and saved in bulk."""
