"""Bulk work (a whole-book scan, an import) keeps the garbage collector's full passes off the app's old objects."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

BULK_YOUNG_THRESHOLD = 50_000
"""Allocations between young collections during bulk work (Python's default is 700).

A page of a scan keeps thousands of objects alive until it is saved: at 700, young collections ran ~2,400 times
in a 100k scan and promoted the page's objects into older generations, whose passes then ran ~220 and ~20 times
(~1 s of a ~10 s scan, measured with `gc.callbacks`). Objects freed by reference counting never wait for a pass,
so only reference cycles (rare here) live a little longer.
"""


@contextmanager
def older_objects_left_alone() -> Iterator[None]:
    """Keep the garbage collector's full passes off the objects that existed before the block, and pass less often.

    A running app holds millions of long-lived objects (LangGraph, the store engine); without this, the full
    collections that bulk allocations trigger walk all of them again and again (~1.5 s of a 100k scan, ~0.4 s
    of a 100k-row import). Objects created inside the block are collected as usual, young ones every
    `BULK_YOUNG_THRESHOLD` allocations; the older ones and the thresholds are handed back at the end.
    """
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(thresholds[0], BULK_YOUNG_THRESHOLD), *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
