"""The whole-book scan engine: pages of accounts scored and saved, in this process or in helper processes."""
