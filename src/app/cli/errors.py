"""What a failed `csm` command says: one line on stderr naming what went wrong and what to do, secrets masked."""

from __future__ import annotations

import errno
import re
import sqlite3

from sqlalchemy.exc import DBAPIError

HINT = "(details with --log-level debug)"

_ADVICE: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"readonly database|read-only file system|permission denied|unable to open database file", re.I),
        "the data folder cannot be written: check its permissions, or pass --data-dir / set CSM_DATA_DIR",
    ),
    (
        re.compile(r"database or disk is full|disk I/O error|no space left on device", re.I),
        "the disk holding the data folder is full or failing: free some space and run the command again "
        "(completed writes are kept)",
    ),
    (
        re.compile(r"file is not a database|database disk image is malformed", re.I),
        "the store is not a readable SQLite database: restore a backup, or move the file aside to start afresh",
    ),
    (
        re.compile(r"table \S+ already exists|relation \S+ already exists", re.I),
        "another csm process was creating the same store: run the command again",
    ),
)


def describe_failure(error: BaseException) -> str:
    """One line for a command that failed with `error` (a known cause gets its remedy)."""
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return "the disk is full: free some space and run the command again (completed writes are kept)"
    text = _first_line(error)
    for pattern, advice in _ADVICE:
        if pattern.search(text):
            return f"{advice} ({text})"
    return f"{type(_root(error)).__name__}: {text}"


def _root(error: BaseException) -> BaseException:
    """The driver's own error behind SQLAlchemy's wrapper."""
    if isinstance(error, DBAPIError) and isinstance(error.orig, BaseException):
        return error.orig
    return error


def _first_line(error: BaseException) -> str:
    root = _root(error)
    text = str(root) if isinstance(root, sqlite3.Error | OSError) or root is not error else str(error)
    return (text.strip().splitlines() or [type(root).__name__])[0][:300]
