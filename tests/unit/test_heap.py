"""services.heap: the start-up heap is frozen and young collections run less often."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from services.heap import YOUNG_THRESHOLD, settle_heap


@pytest.fixture
def restore_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restore_gc")
def test_settle_heap_freezes_survivors_and_raises_the_young_threshold() -> None:
    survivor = [object() for _ in range(100)]
    settle_heap()
    assert gc.get_freeze_count() >= len(survivor)
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD
