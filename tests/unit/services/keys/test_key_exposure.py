"""Blast radius: a content key opens one period of one content; a master, its epoch's span."""

from __future__ import annotations

import pytest

from services.keys.errors import KeyHierarchyError
from services.keys.exposure import content_key_exposure, master_key_exposure
from services.keys.timeline import EpochInfo

P = 60_000
T0 = 1_800_000_000_000


def epoch(epoch_id: str, started_at: int, created_at: int = 0) -> EpochInfo:
    return EpochInfo(epoch_id, started_at, 60, False, created_at)


def test_a_content_key_exposes_one_period_of_one_content() -> None:
    exposure = content_key_exposure("channel-1", T0 // P + 3, "e1", 60)
    assert exposure.content_ids == ("channel-1",)
    assert (exposure.first_period, exposure.last_period, exposure.periods) == (
        T0 // P + 3,
        T0 // P + 3,
        1,
    )
    assert (exposure.start_ms, exposure.end_ms) == (T0 + 3 * P, T0 + 4 * P)


def test_a_master_exposes_every_content_until_the_epoch_is_replaced() -> None:
    leaked, emergency = epoch("a", T0), epoch("x", T0 + 10 * P, created_at=1)
    before = master_key_exposure([leaked], "a")
    assert before.content_ids is None
    assert not before.contained and before.periods is None
    after = master_key_exposure([emergency, leaked], "a")
    assert after.contained
    assert (after.start_ms, after.end_ms, after.periods) == (T0, T0 + 10 * P, 10)
    assert master_key_exposure([emergency, leaked], "x").end_ms is None


def test_an_epoch_replaced_at_its_own_start_exposes_nothing() -> None:
    replaced = master_key_exposure([epoch("a", T0), epoch("x", T0, created_at=1)], "a")
    assert replaced.periods == 0


def test_an_unknown_epoch_is_an_error() -> None:
    with pytest.raises(KeyHierarchyError) as caught:
        master_key_exposure([epoch("a", T0)], "b")
    assert caught.value.reason == "no-epoch"
