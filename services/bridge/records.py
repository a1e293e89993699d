"""Validated samples to `qoe.telemetry` records: pseudonymised, geo-stamped, Avro-encoded.

A request becomes one `QoETelemetryBlock` record per partition its sessions hash to (the
murmur2 partition of each session_ref, as Kafka would pick it), so Kafka, the broker and
the agents pay per request rather than per sample, and each session stays on one
partition, in order. A block stores its samples by column (`streams.telemetry`), and the
encoder works by column too: the request's samples are transposed once, and each
block's columns are picked from them by index and packed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from services.bridge.pseudonyms import EpochPseudonyms, mark_uuid8
from services.bridge.samples import PlayerSample
from streams.codec import AvroCodec
from streams.partitioning import partition_of
from streams.telemetry import Context, pack_block, uuid_text

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
    mark_uuid8(prefix)
    return bytes(prefix)


# A request's sample counters as the last 4 bytes of its event ids (5,000 samples at most
# a request; more are counted on the fly).
_COUNTERS = tuple(n.to_bytes(4, "big") for n in range(8_192))


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
        where = self._partition_of.get(session_ref)
        if where is None:
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

        Works column by column: the samples are transposed once, each sample is placed
        (partition, context) by one lookup, and each block's columns are picked from the
        request's by index.
        """
        if len(entropy) < ENTROPY_BYTES:
            raise ValueError(f"{ENTROPY_BYTES} bytes of entropy are needed")
        if not samples:
            return []
        prefix = request_id_prefix(entropy)
        bridge_region = provenance.region
        (
            sample_ids, viewers, sessions, contents, cdns, serving_regions, sampled_at,
            bitrates, buffers, plays, stalls, stalled, startups, exited, errors,
            object_types, throughputs, top_bitrates,
        ) = zip(*samples, strict=True)  # fmt: skip
        # partition -> (key, its contexts); raw (session, viewer, content, cdn, region) ->
        # (partition, context index).
        blocks: dict[int, tuple[str, dict[Context, int]]] = {}
        placed: dict[tuple[str, str, str, str, str | None], tuple[int, int]] = {}

        def place(raw: tuple[str, str, str, str, str | None]) -> tuple[int, int]:
            session, viewer, content, cdn, serving_region = raw
            ref = pseudonyms.session(session)
            where = self._partition(ref)
            block = blocks.get(where)
            if block is None:
                block = blocks[where] = (ref, {})
            contexts = block[1]
            context: Context = (
                ref, pseudonyms.viewer(viewer), content, cdn, serving_region or bridge_region
            )  # fmt: skip
            spot = placed[raw] = (where, contexts.setdefault(context, len(contexts)))
            return spot

        get = placed.get
        spots = [
            get(raw) or place(raw)
            for raw in zip(sessions, viewers, contents, cdns, serving_regions, strict=True)
        ]
        wheres, context = zip(*spots, strict=True)
        count = len(samples)
        counters = _COUNTERS if count <= len(_COUNTERS) else tuple(
            n.to_bytes(4, "big") for n in range(count)
        )  # fmt: skip
        if sample_ids.count(None) == count:
            ids = [prefix + counter for counter in counters[:count]]
        else:
            mac = pseudonyms.sample_mac
            ids = [
                prefix + counters[n] if sample_id is None else mac(session, sample_id)
                for n, (sample_id, session) in enumerate(zip(sample_ids, sessions, strict=True))
            ]
        columns = (
            context, ids, sampled_at, bitrates, buffers, plays, stalls, stalled, startups,
            exited, errors, object_types, throughputs, top_bitrates,
        )  # fmt: skip
        epoch = pseudonyms.epoch
        country = provenance.country or UNKNOWN_COUNTRY
        subdivision = provenance.subdivision or ""
        encode = self._codec.encode
        members: dict[int, list[int]] = {where: [] for where in blocks}
        if len(blocks) > 1:
            for n, where in enumerate(wheres):
                members[where].append(n)
        records = []
        for number, (where, (key, contexts)) in enumerate(blocks.items()):
            if len(blocks) == 1:
                picked: Sequence[Sequence[Any]] = columns
            else:
                indices = members[where]
                pick = itemgetter(*indices)
                picked = [
                    pick(column) if len(indices) > 1 else (pick(column),) for column in columns
                ]
            (
                b_context, b_ids, b_sampled_at, b_bitrates, b_buffers, b_plays, b_stalls,
                b_stalled, b_startups, b_exited, b_errors, b_object_types, b_throughputs,
                b_top_bitrates,
            ) = picked  # fmt: skip
            event_ids = bytearray(b"".join(b_ids))
            mark_uuid8(event_ids)
            block = pack_block(
                event_id=uuid_text(prefix + (_BLOCK_COUNTER + number).to_bytes(4, "big")),
                occurred_at=provenance.received_ms,
                region=bridge_region,
                partition_key=key,
                pseudonym_epoch=epoch,
                country=country,
                subdivision=subdivision,
                contexts=contexts,
                context=b_context,
                event_ids=bytes(event_ids),
                sampled_at=b_sampled_at,
                bitrate_kbps=b_bitrates,
                buffer_ms=b_buffers,
                play_ms=b_plays,
                rebuffer_count=b_stalls,
                rebuffer_ms=b_stalled,
                startup_ms=b_startups,
                exited_before_start=b_exited,
                error_code=b_errors,
                object_type=b_object_types,
                throughput_kbps=b_throughputs,
                top_bitrate_kbps=b_top_bitrates,
            )
            records.append((key.encode(), encode(block)))
        return records
