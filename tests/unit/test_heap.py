"""Bulk work's garbage-collector settings are handed back as they were, even when the work fails."""

from __future__ import annotations

import gc

import pytest

from src.app.scan.heap import BULK_YOUNG_THRESHOLD, older_objects_left_alone


def test_the_collector_passes_less_often_inside_and_is_handed_back_as_it_was() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), older_objects_left_alone():
        assert gc.get_threshold() == (max(before[0], BULK_YOUNG_THRESHOLD), *before[1:])
        assert gc.get_freeze_count() > 0
        raise RuntimeError("the bulk work failed")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
