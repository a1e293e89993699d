"""The Avro single-object codec: wire format, fingerprints, errors, and other readers."""

from __future__ import annotations

import contextlib
import io
import json

import avro.io
import avro.schema
import fastavro
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import SCHEMA_DIR
from streams.codec import MAGIC, crc64_avro, default_codec, schema_fingerprint
from streams.errors import DecodeError, EncodeError
from streams.events import IngestHealth, IngestRole, IngestStatus, KeyEpoch, WrappedKey


def _beat(**overrides: object) -> IngestHealth:
    fields: dict[str, object] = {
        "event_id": "5e1f3c9a-0000-4000-8000-000000000001",
        "occurred_at": 1_700_000_000_000,
        "region": "eu-west",
        "source_id": "packager-a",
        "role": IngestRole.PACKAGER,
        "content_id": "match-1",
        "beat_seq": 7,
        "last_segment_seq": 1234,
        "last_segment_at": 1_700_000_000_000,
        "status": IngestStatus.OK,
    }
    fields.update(overrides)
    return IngestHealth(**fields)  # type: ignore[arg-type]


def test_crc64_avro_matches_fastavro_for_every_schema() -> None:
    for path in SCHEMA_DIR.glob("*.avsc"):
        schema = json.loads(path.read_text())
        pcf = fastavro.schema.to_parsing_canonical_form(schema)
        ours = crc64_avro(pcf.encode())
        assert fastavro.schema.fingerprint(pcf, "CRC-64-AVRO") == ours.to_bytes(8, "little").hex()


def test_crc64_avro_of_empty_input_is_the_spec_seed() -> None:
    assert crc64_avro(b"") == 0xC15D213AA4D7A795


def test_encoded_bytes_follow_the_single_object_layout() -> None:
    codec = default_codec()
    data = codec.encode(_beat())
    schema = json.loads((SCHEMA_DIR / "IngestHealth.avsc").read_text())
    assert data[:2] == MAGIC
    assert data[2:10] == schema_fingerprint(schema)
    body = fastavro.schemaless_reader(io.BytesIO(data[10:]), fastavro.parse_schema(schema))
    assert body["source_id"] == "packager-a"


def test_roundtrip_gives_an_equal_event() -> None:
    codec = default_codec()
    event = _beat()
    assert codec.decode(codec.encode(event)) == event


def test_nested_records_and_bytes_roundtrip() -> None:
    codec = default_codec()
    epoch = KeyEpoch(
        event_id="e",
        occurred_at=1,
        region="us-east",
        epoch_id="epoch-1",
        started_at=2,
        period_seconds=120,
        emergency=False,
        wrapped_keys=(WrappedKey(region="us-east", kek_id="k1", wrapped_key=b"\x00\x01"),),
    )
    assert codec.decode(codec.encode(epoch)) == epoch


def test_apache_avro_reads_what_we_write() -> None:
    """Apache's own Python implementation computes the same fingerprint and decodes the body."""
    text = (SCHEMA_DIR / "IngestHealth.avsc").read_text()
    schema = avro.schema.parse(text)
    data = default_codec().encode(_beat())
    assert data[2:10] == bytes(schema.fingerprint("CRC-64-AVRO"))
    decoder = avro.io.BinaryDecoder(io.BytesIO(data[10:]))
    record = avro.io.DatumReader(schema).read(decoder)
    assert record["last_segment_seq"] == 1234
    assert record["role"] == "PACKAGER"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "truncated"),
        (b"\xc3\x01\x00", "truncated"),
        (b"\x00\x00" + b"\x00" * 20, "bad-magic"),
        (b"\xc3\x01" + b"\xff" * 8 + b"\x02a", "unknown-fingerprint"),
    ],
)
def test_bad_bytes_get_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        default_codec().decode(data)
    assert info.value.reason == reason


def test_a_truncated_body_is_malformed() -> None:
    data = default_codec().encode(_beat())
    with pytest.raises(DecodeError) as info:
        default_codec().decode(data[:-3])
    assert info.value.reason == "malformed-body"


def test_bytes_after_the_record_are_refused() -> None:
    data = default_codec().encode(_beat())
    with pytest.raises(DecodeError) as info:
        default_codec().decode(data + b"\x00")
    assert info.value.reason == "trailing-bytes"


def test_a_record_missing_fields_cannot_be_encoded() -> None:
    record = _beat().to_avro()
    del record["content_id"]
    with pytest.raises(EncodeError) as info:
        default_codec().encode_record("liveward.IngestHealth", record)
    assert info.value.reason == "record-mismatch"


@given(st.binary(max_size=64))
def test_arbitrary_bytes_never_escape_as_anything_but_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        default_codec().decode(data)


@given(
    source_id=st.text(max_size=40),
    beat_seq=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    bitrate=st.integers(min_value=-(2**31), max_value=2**31 - 1),
)
def test_any_valid_beat_roundtrips(source_id: str, beat_seq: int, bitrate: int) -> None:
    codec = default_codec()
    event = _beat(source_id=source_id, beat_seq=beat_seq, input_bitrate_kbps=bitrate)
    assert codec.decode(codec.encode(event)) == event
