"""Distinct sets: exact while small, a HyperLogLog estimate beyond, mergeable either way."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from processors.distinct import EXACT_LIMIT, DistinctSet


def test_counts_are_exact_up_to_the_limit() -> None:
    distinct = DistinctSet.of(f"v-{i % EXACT_LIMIT}" for i in range(10 * EXACT_LIMIT))

    assert distinct.exact and distinct.count() == EXACT_LIMIT


@pytest.mark.parametrize("members", [EXACT_LIMIT + 1, 1_000, 20_000, 200_000])
def test_beyond_the_limit_the_estimate_is_close(members: int) -> None:
    distinct = DistinctSet.of(f"viewer-{i}" for i in range(members))

    assert not distinct.exact
    # About 3.3 % standard error: four of them is a bound that does not flake.
    assert distinct.count() == pytest.approx(members, rel=0.13)


@given(st.sets(st.integers(0, 5_000)), st.sets(st.integers(0, 5_000)))
def test_union_counts_like_the_union_of_the_members(a: set[int], b: set[int]) -> None:
    left = DistinctSet.of(f"m{i}" for i in a)
    right = DistinctSet.of(f"m{i}" for i in b)

    left.update(right)

    expected = len(a | b)
    if expected <= EXACT_LIMIT:
        assert left.count() == expected
    else:
        assert left.count() == pytest.approx(expected, rel=0.13)


def test_a_sketch_and_a_set_merge_both_ways() -> None:
    small = DistinctSet.of(f"a{i}" for i in range(50))
    big = DistinctSet.of(f"b{i}" for i in range(5_000))

    one = small.copy()
    one.update(big)
    other = big.copy()
    other.update(small)

    assert one == other
    assert one.count() == pytest.approx(5_050, rel=0.13)


@pytest.mark.parametrize("members", [0, 3, EXACT_LIMIT, 10_000])
def test_json_round_trip(members: int) -> None:
    distinct = DistinctSet.of(f"x{i}" for i in range(members))

    restored = DistinctSet.from_json(orjson.loads(orjson.dumps(distinct.to_json())))

    assert restored == distinct and restored.count() == distinct.count()


def test_a_truncated_sketch_is_refused() -> None:
    with pytest.raises(ValueError, match="registers"):
        DistinctSet.from_json({"h": "AAAA"})
