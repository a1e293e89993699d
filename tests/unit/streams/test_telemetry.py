"""Batches of QoE samples: grouped per shared fields and partition, exploded back whole."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.codec import default_codec
from streams.events import QoETelemetryBatch
from streams.partitioning import partition_of
from streams.telemetry import batch_of, batches_of, samples_of, telemetry_samples
from tests.fixtures.qoe import telemetry


@given(
    st.lists(
        st.tuples(st.integers(0, 30), st.sampled_from(["eu", "us"]), st.integers(0, 2)),
        max_size=60,
    )
)
def test_batches_hold_every_sample_once_in_order_per_session(
    picks: list[tuple[int, str, int]],
) -> None:
    samples = [
        telemetry(region, viewer, sampled_at=1_000 + n, occurred_at=received)
        for n, (viewer, region, received) in enumerate(picks)
    ]
    batches = batches_of(samples, 6)
    codec = default_codec()

    back = []
    for batch in batches:
        decoded = codec.decode_as(codec.encode(batch), QoETelemetryBatch)
        wheres = {partition_of(s.session_ref.encode(), 6) for s in decoded.samples}
        assert wheres == {partition_of(batch.partition_key.encode(), 6)}
        unpacked = samples_of(decoded)
        assert unpacked == sorted(unpacked, key=samples.index)  # in the order given
        back += unpacked
    assert sorted(back, key=samples.index) == samples


def test_a_single_sample_reads_as_a_batch_of_one_and_other_events_as_none() -> None:
    sample = telemetry("eu", 1, sampled_at=5)
    assert telemetry_samples(sample) == [sample]
    assert telemetry_samples(batch_of([sample])) == [sample]
    assert telemetry_samples(object()) is None


def test_samples_that_do_not_share_the_batch_fields_are_refused() -> None:
    with pytest.raises(ValueError, match="does not share"):
        batch_of([telemetry("eu", 1, sampled_at=5), telemetry("eu", 2, sampled_at=5, country="SE")])
    with pytest.raises(ValueError, match="at least one"):
        batch_of([])
