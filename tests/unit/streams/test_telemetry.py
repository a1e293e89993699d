"""Blocks of QoE samples: grouped per shared fields and partition, stored by column, and
read back whole, as rows or as columns; older record shapes read the same."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.codec import default_codec
from streams.errors import DecodeError
from streams.events import KeyRotated, QoETelemetryBatch, QoETelemetryBlock
from streams.partitioning import partition_of
from streams.telemetry import (
    SHARED_FIELDS,
    SampleBlock,
    block_of,
    blocks_of,
    decode_block,
    telemetry_samples,
)
from tests.fixtures.qoe import telemetry

CODEC = default_codec()


@given(
    st.lists(
        st.tuples(
            st.integers(0, 30),
            st.sampled_from(["eu", "us"]),
            st.integers(0, 2),
            st.none() | st.integers(0, 60_000),
            st.none() | st.sampled_from(["E1", "E2"]),
            st.none() | st.sampled_from(["v", "a", "m"]),
            st.none() | st.integers(0, 100_000_000),
        ),
        max_size=60,
    )
)
def test_blocks_hold_every_sample_once_in_order_per_session(
    picks: list[tuple[int, str, int, int | None, str | None, str | None, int | None]],
) -> None:
    samples = [
        telemetry(
            region,
            viewer,
            sampled_at=1_000 + n,
            occurred_at=received,
            startup_ms=startup,
            error_code=error,
            object_type=kind,
            throughput_kbps=throughput,
            exited_before_start=n % 3 == 0,
        )
        for n, (viewer, region, received, startup, error, kind, throughput) in enumerate(picks)
    ]
    blocks = blocks_of(samples, 6)

    back = []
    for block in blocks:
        decoded = decode_block(CODEC, CODEC.encode(block))
        wheres = {partition_of(c[0].encode(), 6) for c in decoded.contexts}
        assert wheres == {partition_of(block.partition_key.encode(), 6)}
        unpacked = decoded.samples()
        assert unpacked == sorted(unpacked, key=samples.index)  # in the order given
        assert unpacked == telemetry_samples(block)
        back += unpacked
    assert sorted(back, key=samples.index) == samples


def test_repeated_strings_are_stored_once_per_block() -> None:
    samples = [telemetry("eu", 1, sampled_at=n, occurred_at=9, error_code="E1") for n in range(9)]
    block = block_of(samples)

    assert len(block.contexts) == 1
    assert block.error_codes == ("E1",)
    assert block.sample_count == 9
    assert len(block.play_ms) == 36  # four bytes a sample


def test_older_batches_and_single_samples_read_as_blocks() -> None:
    samples = [telemetry("eu", v, sampled_at=5 + v, occurred_at=50) for v in range(3)]
    shared = {name: getattr(samples[0], name) for name in SHARED_FIELDS}
    batch = QoETelemetryBatch.from_avro(
        {
            **shared,
            "event_id": "0b7e1c1e-0000-4000-8000-000000000001",
            "partition_key": samples[0].session_ref,
            "samples": [{k: v for k, v in s.to_avro().items() if k not in shared} for s in samples],
        }
    )

    assert decode_block(CODEC, CODEC.encode(batch)).samples() == samples
    assert decode_block(CODEC, CODEC.encode(samples[0])).samples() == samples[:1]
    assert telemetry_samples(batch) == samples
    assert telemetry_samples(samples[0]) == samples[:1]
    assert telemetry_samples(block_of(samples)) == samples
    assert telemetry_samples(object()) is None


def _tampered(**fields: object) -> bytes:
    record = block_of([telemetry("eu", v, sampled_at=5, occurred_at=9) for v in range(3)]).to_avro()
    record.update(fields)
    return CODEC.encode(QoETelemetryBlock.from_avro(record))


@pytest.mark.parametrize(
    "fields",
    [
        {"play_ms": b"\x00" * 8},  # two values for three samples
        {"sampled_at": b"\x00" * 12},
        {"event_ids": b"\x00" * 47},
        {"exited_before_start": b"\x00"},
        {"context": (7).to_bytes(4, "little") * 3},  # past the three contexts
        {"context": (-1).to_bytes(4, "little", signed=True) * 3},
        {"error_code": (1).to_bytes(4, "little") * 3},  # no error code is listed
    ],
)
def test_a_block_whose_columns_do_not_add_up_does_not_decode(fields: dict[str, object]) -> None:
    with pytest.raises(DecodeError) as refused:
        decode_block(CODEC, _tampered(**fields))
    assert refused.value.reason == "malformed-block"


def test_other_events_are_the_wrong_type() -> None:
    rotated = KeyRotated(
        event_id="0b7e1c1e-0000-4000-8000-000000000001", occurred_at=1, region="eu",
        content_id="c", period=1, key_id="00" * 16, epoch_id="e", period_start=0, period_end=1,
    )  # fmt: skip
    with pytest.raises(DecodeError) as refused:
        decode_block(CODEC, CODEC.encode(rotated))
    assert refused.value.reason == "wrong-event-type"


def test_columns_are_read_without_copying_and_index_like_lists() -> None:
    block = block_of(
        [telemetry("eu", v, sampled_at=100 + v, occurred_at=99, bitrate_kbps=v) for v in range(4)]
    )
    decoded = SampleBlock.from_record(block.to_avro())

    assert list(decoded.sampled_at) == [100, 101, 102, 103]
    assert list(decoded.bitrate_kbps) == [0, 1, 2, 3]
    assert len(decoded) == 4


def test_samples_that_do_not_share_the_block_fields_are_refused() -> None:
    with pytest.raises(ValueError, match="does not share"):
        block_of([telemetry("eu", 1, sampled_at=5), telemetry("eu", 2, sampled_at=5, country="SE")])
    with pytest.raises(ValueError, match="at least one"):
        block_of([])
