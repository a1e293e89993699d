"""The bridge's blocks: one per partition, sessions kept whole and in order, every value
of every sample where the schema says, readable by the codec and by Apache `avro`."""

from __future__ import annotations

import io
import os

import avro.io
import avro.schema
from hypothesis import given
from hypothesis import strategies as st

from schemas import SCHEMA_DIR
from services.bridge.epochs import EpochKey
from services.bridge.pseudonyms import EpochPseudonyms
from services.bridge.records import BlockEncoder, Provenance
from services.bridge.samples import MAX_DURATION_MS, PlayerSample
from streams.codec import default_codec
from streams.partitioning import partition_of
from streams.telemetry import SampleBlock, decode_block

CODEC = default_codec()
PARTITIONS = 6
ENCODER = BlockEncoder(CODEC, PARTITIONS)
PSEUDONYMS = EpochPseudonyms(EpochKey("2024-05-01", bytes(range(32))))

_names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40)
_tokens = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,20}", fullmatch=True)
_counts = st.integers(0, MAX_DURATION_MS)
samples = st.builds(
    PlayerSample,
    sample_id=st.none() | _names,
    viewer=_names,
    session=_names,
    content=_names,
    cdn=_tokens,
    serving_region=st.none() | _tokens,
    sampled_at=st.integers(0, 2**45),
    bitrate_kbps=_counts,
    buffer_ms=_counts,
    play_ms=_counts,
    rebuffer_count=_counts,
    rebuffer_ms=_counts,
    startup_ms=st.none() | _counts,
    exited_before_start=st.booleans(),
    error_code=st.none() | _tokens,
    object_type=st.none() | st.sampled_from(["v", "av", "a", "m", "x-other"]),
    throughput_kbps=st.none() | _counts,
    top_bitrate_kbps=st.none() | _counts,
)
provenances = st.builds(
    Provenance,
    region=_tokens,
    received_ms=st.integers(0, 2**45),
    country=st.none() | st.sampled_from(["SE", "US"]),
    subdivision=st.none() | st.sampled_from(["E", "WA"]),
)


@given(st.lists(samples, min_size=1, max_size=20), provenances)
def test_every_sample_lands_once_with_every_value_in_its_sessions_block(
    batch: list[PlayerSample], provenance: Provenance
) -> None:
    records = ENCODER.encode_blocks(batch, provenance, PSEUDONYMS, os.urandom(16 * len(batch)))

    written = []
    partitions = []
    for key, value in records:
        block = decode_block(CODEC, value)
        assert key == block.partition_key.encode()
        where = partition_of(key, PARTITIONS)
        assert {partition_of(c[0].encode(), PARTITIONS) for c in block.contexts} == {where}
        assert len(set(block.contexts)) == len(block.contexts)  # each stored once
        partitions.append(where)
        written += block.samples()
    assert len(set(partitions)) == len(records)  # one block per partition
    # Every sample once; within a session (one partition) in the request's order.
    for sample in batch:
        ref = PSEUDONYMS.session(sample.session)
        assert [w.session_ref for w in written].count(ref) == sum(
            PSEUDONYMS.session(b.session) == ref for b in batch
        )
    expected = sorted(
        batch,
        key=lambda s: partitions.index(partition_of(PSEUDONYMS.session(s.session).encode(), 6)),
    )
    for record, sample in zip(written, expected, strict=True):
        assert record.session_ref == PSEUDONYMS.session(sample.session)
        assert record.viewer_pseudonym == PSEUDONYMS.viewer(sample.viewer)
        assert record.pseudonym_epoch == PSEUDONYMS.epoch
        assert (record.region, record.occurred_at) == (provenance.region, provenance.received_ms)
        assert record.country == (provenance.country or "--")
        assert record.subdivision == (provenance.subdivision or "")
        assert record.serving_region == (sample.serving_region or provenance.region)
        assert (record.sampled_at, record.bitrate_kbps, record.rebuffer_ms) == (
            sample.sampled_at, sample.bitrate_kbps, sample.rebuffer_ms,
        )  # fmt: skip
        assert (record.buffer_ms, record.play_ms, record.rebuffer_count) == (
            sample.buffer_ms, sample.play_ms, sample.rebuffer_count,
        )  # fmt: skip
        assert (record.startup_ms, record.error_code) == (sample.startup_ms, sample.error_code)
        assert record.exited_before_start is sample.exited_before_start
        assert (record.object_type, record.throughput_kbps, record.top_bitrate_kbps) == (
            sample.object_type, sample.throughput_kbps, sample.top_bitrate_kbps,
        )  # fmt: skip


def test_apache_avro_reads_a_block() -> None:
    """Apache's own implementation agrees on the fingerprint and decodes the columns."""
    schema = avro.schema.parse((SCHEMA_DIR / "QoETelemetryBlock.avsc").read_text())
    sample = PlayerSample("n", "v", "s", "c", "cdn", None, 7, 4500, 1, 2, 3, 4, 900, False, "E1")
    ((_, value),) = ENCODER.encode_blocks(
        [sample, sample._replace(sample_id="m", startup_ms=None)],
        Provenance("eu", 5, "SE", None),
        PSEUDONYMS,
        os.urandom(12),
    )

    assert value[2:10] == bytes(schema.fingerprint("CRC-64-AVRO"))
    record = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(value[10:])))
    assert (record["region"], record["occurred_at"], record["country"]) == ("eu", 5, "SE")
    block = SampleBlock.from_record(record)
    assert list(block.bitrate_kbps) == [4500, 4500]
    assert list(block.startup_ms) == [900, -1]
    assert block.error_codes == ("E1",) and list(block.error_code) == [0, 0]
    assert [c[2:] for c in block.contexts] == [("c", "cdn", "eu")]


def test_sessions_spread_over_partitions_one_block_each() -> None:
    base = PlayerSample(None, "v", "s", "c", "cdn", None, 1, 0, 0, 0, 0, 0, None, False, None)
    batch = [base._replace(session=f"session-{n % 40}") for n in range(400)]
    records = ENCODER.encode_blocks(batch, Provenance("r", 1, None, None), PSEUDONYMS, bytes(12))

    assert len(records) == PARTITIONS
    decoded = [decode_block(CODEC, value) for _, value in records]
    assert sum(len(b) for b in decoded) == 400
    assert sum(len(b.contexts) for b in decoded) == 40  # a session's context once
    assert len({b.event_id for b in decoded}) == PARTITIONS


def test_event_ids_are_unique_uuids_unless_the_player_named_the_sample() -> None:
    base = PlayerSample(None, "v", "s", "c", "cdn", None, 1, 0, 0, 0, 0, 0, None, False, None)
    named = base._replace(sample_id="n-1")
    records = ENCODER.encode_blocks(
        [base, base, named, named], Provenance("r", 1, None, None), PSEUDONYMS, os.urandom(64)
    )
    ids = [
        sample.event_id for _, value in records for sample in decode_block(CODEC, value).samples()
    ]

    assert len(set(ids[:3])) == 3 and ids[2] == ids[3]
    assert ids[2] == PSEUDONYMS.sample_event_id("s", "n-1")
    assert {i[14] for i in ids} == {"8"}  # version 8: not all bits are random
    assert {i[19] for i in ids} <= set("89ab")  # the RFC 9562 variant
