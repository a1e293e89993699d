"""Validated samples to `qoe.telemetry` records: pseudonymised, geo-stamped, Avro-encoded.

A request becomes one `QoETelemetryBlock` record per partition its sessions hash to (the
murmur2 partition of each session_ref, as Kafka would pick it), so Kafka, the broker and
the agents pay per request rather than per sample, and each session stays on one
partition, in order. A block stores its samples by column (`streams.telemetry`): the
loop here only appends each sample's values to its partition's column lists, and the
columns are packed once per block, so encoding costs well under a microsecond a sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from services.bridge.pseudonyms import EpochPseudonyms
from services.bridge.samples import PlayerSample
from streams.codec import AvroCodec
from streams.partitioning import partition_of
from streams.telemetry import NONE, BlockColumns, Context, uuid_text

# Session partitions remembered (a player keeps its session for many requests).
PARTITION_MEMO_ENTRIES = 200_000
UNKNOWN_COUNTRY = "--"
# Random bytes each request needs for its event ids (see `encode_blocks`).
ENTROPY_BYTES = 12
# The last 32 bits of a block's event id: above any sample counter (5,000 at most).
_BLOCK_COUNTER = 0x80000000


@dataclass(frozen=True, slots=True)
class Provenance:
    """What every sample of one request shares: who received it, when, from where."""

    region: str  # the bridge's region
    received_ms: int
    country: str | None
    subdivision: str | None


def request_id_prefix(entropy: bytes) -> bytes:
    """The first 12 bytes of a request's event ids: random, with the version-8 and the
    RFC 9562 variant bits set (the last 4 bytes count)."""
    prefix = bytearray(entropy[:ENTROPY_BYTES])
    prefix[6] = (prefix[6] & 0x0F) | 0x80
    prefix[8] = (prefix[8] & 0x3F) | 0x80
    return bytes(prefix)


class BlockEncoder:
    """Writes `qoe.telemetry` (key, value) records for validated samples: one block per
    partition of a topic with `partitions` partitions."""

    def __init__(self, codec: AvroCodec, partitions: int) -> None:
        if partitions < 1:
            raise ValueError("a topic has at least one partition")
        self._codec = codec
        self._partitions = partitions
        self._partition_of: dict[str, int] = {}

    def _partition(self, session_ref: str) -> int:
        if len(self._partition_of) >= PARTITION_MEMO_ENTRIES:
            self._partition_of.clear()
        where = self._partition_of[session_ref] = partition_of(
            session_ref.encode(), self._partitions
        )
        return where

    def encode_blocks(
        self,
        samples: Sequence[PlayerSample],
        provenance: Provenance,
        pseudonyms: EpochPseudonyms,
        entropy: bytes,
    ) -> list[tuple[bytes, bytes]]:
        """(key, value) per partition the samples' sessions hash to, in order of first
        appearance; samples keep their order within a block. The key is the block's
        `partition_key`: its first sample's session_ref.

        A sample with an id of its own gets an event_id derived from it (a resent sample
        keeps its id); the others get `<request prefix><counter>`: a version-8 UUID whose
        first 12 bytes come from `entropy` (ENTROPY_BYTES random bytes per request,
        passed in so this stays pure) and whose last 4 count the samples. Block event ids
        share the prefix and count from 2**31.
        """
        if len(entropy) < ENTROPY_BYTES:
            raise ValueError(f"{ENTROPY_BYTES} bytes of entropy are needed")
        prefix = request_id_prefix(entropy)
        viewers: dict[str, str] = {}
        # session id -> (its partition's columns, its session_ref)
        sessions: dict[str, tuple[BlockColumns, str]] = {}
        # partition -> (key, columns)
        blocks: dict[int, tuple[str, BlockColumns]] = {}
        known_partitions = self._partition_of
        bridge_region = provenance.region
        for index, (
            sample_id, viewer, session, content, cdn, serving_region, sampled_at,
            bitrate, buffer, play, stalls, stalled, startup, exited, error,
            object_type, throughput, top_bitrate,
        ) in enumerate(samples):  # fmt: skip
            known_session = sessions.get(session)
            if known_session is None:
                ref = pseudonyms.session(session)
                where = known_partitions.get(ref)
                if where is None:
                    where = self._partition(ref)
                block = blocks.get(where)
                if block is None:
                    block = blocks[where] = (ref, BlockColumns())
                known_session = sessions[session] = (block[1], ref)
            columns, ref = known_session
            pseudonym = viewers.get(viewer)
            if pseudonym is None:
                pseudonym = viewers[viewer] = pseudonyms.viewer(viewer)
            if serving_region is None:
                serving_region = bridge_region  # noqa: PLW2901 - the default, as documented
            context: Context = (ref, pseudonym, content, cdn, serving_region)
            contexts = columns.contexts
            place = contexts.get(context)
            if place is None:
                place = contexts[context] = len(contexts)
            columns.context.append(place)
            columns.event_ids.append(
                prefix + index.to_bytes(4, "big")
                if sample_id is None
                else pseudonyms.sample_event_id_bytes(session, sample_id)
            )
            columns.sampled_at.append(sampled_at)
            columns.bitrate_kbps.append(bitrate)
            columns.buffer_ms.append(buffer)
            columns.play_ms.append(play)
            columns.rebuffer_count.append(stalls)
            columns.rebuffer_ms.append(stalled)
            columns.startup_ms.append(NONE if startup is None else startup)
            columns.exited_before_start.append(1 if exited else 0)
            if error is None:
                columns.error_code.append(NONE)
            else:
                codes = columns.error_codes
                columns.error_code.append(codes.setdefault(error, len(codes)))
            if object_type is None:
                columns.object_type.append(NONE)
            else:
                kinds = columns.object_types
                columns.object_type.append(kinds.setdefault(object_type, len(kinds)))
            columns.throughput_kbps.append(NONE if throughput is None else throughput)
            columns.top_bitrate_kbps.append(NONE if top_bitrate is None else top_bitrate)
        epoch = pseudonyms.epoch
        country = provenance.country or UNKNOWN_COUNTRY
        subdivision = provenance.subdivision or ""
        encode = self._codec.encode
        return [
            (
                key.encode(),
                encode(
                    columns.block(
                        event_id=uuid_text(prefix + (_BLOCK_COUNTER + number).to_bytes(4, "big")),
                        occurred_at=provenance.received_ms,
                        region=bridge_region,
                        partition_key=key,
                        pseudonym_epoch=epoch,
                        country=country,
                        subdivision=subdivision,
                    )
                ),
            )
            for number, (key, columns) in enumerate(blocks.values())
        ]
