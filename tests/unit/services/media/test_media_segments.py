"""Segment numbering from the wall clock and deterministic segment bytes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.media.segments import (
    SEGMENT_BYTES,
    TS_PACKET,
    ingest_chunk,
    is_segment_of,
    last_complete_segment,
    package_segment,
    segment_at,
    segment_end,
    segment_start,
)


def test_segments_are_numbered_from_the_wall_clock() -> None:
    assert segment_at(1_700_000_001.9, 2.0) == 850_000_000
    assert segment_at(1_700_000_002.0, 2.0) == 850_000_001
    assert last_complete_segment(1_700_000_002.0, 2.0) == 850_000_000
    assert segment_start(850_000_000, 2.0) == 1_700_000_000.0
    assert segment_end(850_000_000, 2.0) == 1_700_000_002.0


@given(st.floats(min_value=0, max_value=4e9), st.sampled_from([1.0, 2.0, 4.0, 6.0]))
def test_a_moment_lies_inside_its_segment(epoch: float, seconds: float) -> None:
    seq = segment_at(epoch, seconds)
    assert segment_start(seq, seconds) <= epoch < segment_end(seq, seconds)


def test_both_packagers_make_the_same_bytes_from_the_same_chunk() -> None:
    first = package_segment(ingest_chunk("match", 42))
    second = package_segment(ingest_chunk("match", 42))
    assert first == second
    assert len(first) == SEGMENT_BYTES
    assert all(first[i] == 0x47 for i in range(0, len(first), TS_PACKET))


def test_a_segment_names_its_content_and_number() -> None:
    body = package_segment(ingest_chunk("match", 42))
    assert is_segment_of(body, "match", 42)
    assert not is_segment_of(body, "match", 43)
    assert not is_segment_of(body, "other", 42)
    assert not is_segment_of(body[:-1], "match", 42)
    assert package_segment(ingest_chunk("match", 43)) != body
