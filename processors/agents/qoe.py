"""The QoE agents: telemetry samples → per-batch partials → windowed, k-anonymous aggregates.

Two stages, because a (region, cdn, content) group spans every `qoe.telemetry` partition
(keyed by session) while its distinct viewers and percentiles must be computed over all
of them at once:

1. `qoe-partials` reads `qoe.telemetry` records (each a block of one request's samples,
   stored by column) in batches of records (`take_events`) and folds every sample of them
   into mergeable partials (`processors.qoe.partials_of_blocks`, straight from the columns),
   sent to an internal topic keyed by serving region. It keeps no state, so a restart
   cannot lose any; the batch is acked only after Kafka confirmed its partials.
2. `qoe-windows` reads the partials, all of a serving region on one partition, and folds
   them into that region's open windows, held in a Faust table keyed by serving region:
   the same key as its input, so the state's changelog partition is the input's partition
   and moves with it on a rebalance or restart. Closed windows go to `qoe.aggregates` (and
   are confirmed) before the state saying they closed is written.

Delivery is at least once. A crash between stage 1's send and its offset commit sends
that batch's partials again: sums of windows still open count those samples twice
(distinct counts are unions, unaffected). A crash between publishing an aggregate and
saving the state publishes the window again under the same deterministic event id, which
the ClickHouse table collapses. A timer closes the windows of a region that has gone
quiet (no partial for a window length, the lateness, or 5 s, whichever is longest, of
wall time), so the last window of a stream is published too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import faust
import orjson
from confluent_kafka import KafkaException
from confluent_kafka.cimpl import NewTopic

from liveward.settings import Settings
from processors.deadletters import send_dead_letter
from processors.qoe import (
    Partial,
    RegionWindows,
    WindowRules,
    advance_watermark,
    close_windows,
    fold_partial,
    partials_of_blocks,
)
from processors.tables import changelog_known
from processors.topics import catalog_topic
from streams.catalog import CATALOG, DAY_MS
from streams.codec import default_codec
from streams.deadletter import DEAD_LETTER_TOPIC
from streams.errors import DecodeError, StreamsError
from streams.meta import now_ms
from streams.telemetry import SampleBlock, decode_block
from streams.topics import admin_client

log = logging.getLogger(__name__)

PARTIALS_AGENT = "qoe-partials"
WINDOWS_AGENT = "qoe-windows"
WINDOWS_TABLE = "qoe-windows"
# Records per stage-1 batch. A record holds a request's samples of one partition (one to
# thousands): enough that per-batch costs (one partial per group, one send each) vanish,
# few enough to keep a batch's wait and size bounded.
RECORD_BATCH = 500
PARTIAL_BATCH = 1_000
BATCH_WITHIN_S = 0.25
IDLE_CHECK_S = 1.0
# A region this long without partials is quiet. Never shorter than a few seconds: a busy
# worker can take that long between batches, and closing a window early makes its
# samples late.
MIN_QUIET_MS = 5_000


def partials_topic_name(app: faust.App) -> str:
    return f"{app.conf.id}-qoe-partials"


def window_rules(settings: Settings) -> WindowRules:
    analytics = settings.analytics
    return WindowRules(
        window_ms=analytics.window_ms, lateness_ms=analytics.lateness_ms, k=analytics.k_anonymity
    )


def ensure_topics(settings: Settings, topics: dict[str, dict[str, str]], partitions: int) -> None:
    """Create the agents' own topics (name -> config) if missing, before the worker subscribes.

    Faust would declare them too, but a worker subscribing while their metadata is still
    spreading ignores them until its next metadata refresh (minutes): the partials would
    not be read, and the table's changelog not recovered.
    """
    admin = admin_client(settings)
    existing = admin.list_topics(timeout=30).topics
    replication = settings.kafka.replication_factor
    missing = [
        NewTopic(
            name,
            num_partitions=partitions,
            replication_factor=replication,
            config={**config, "min.insync.replicas": str(settings.kafka.min_insync_replicas)},
        )
        for name, config in topics.items()
        if name not in existing
    ]
    if not missing:
        return
    for name, future in admin.create_topics(missing, operation_timeout=30).items():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != 36:  # TOPIC_ALREADY_EXISTS: another worker won
                raise StreamsError(f"cannot create {name}: {exc}", reason="topic-create") from exc


def register(app: faust.App, settings: Settings) -> None:
    codec = default_codec()
    rules = window_rules(settings)
    telemetry = catalog_topic(app, "qoe.telemetry")
    aggregates = catalog_topic(app, "qoe.aggregates")
    aggregate_key = CATALOG["qoe.aggregates"].key_of
    dead_letters = catalog_topic(app, DEAD_LETTER_TOPIC)
    partitions = app.conf.topic_partitions
    ensure_topics(
        settings,
        {
            # Partials are consumed within seconds; a day covers any restart.
            partials_topic_name(app): {"retention.ms": str(DAY_MS)},
            # What Faust would create for the table's changelog: compacted.
            f"{app.conf.id}-{WINDOWS_TABLE}-changelog": {"cleanup.policy": "compact"},
        },
        partitions,
    )
    partials = app.topic(
        partials_topic_name(app),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
        internal=True,
    )
    # Keyed by serving region like the partials topic (same murmur2 partitioner), so each
    # region's state recovers on the partition its partials arrive on.
    windows = app.Table(
        WINDOWS_TABLE,
        default=None,
        partitions=partitions,
        key_type=bytes,
        value_type=bytes,
        use_partitioner=True,
    )
    # Wall-clock time of the last partial per region, for closing quiet regions' windows;
    # a region recovered from the changelog counts as heard from when the worker started.
    last_partial_at: dict[bytes, float] = {}
    started_at = time.monotonic()
    # The agent and the idle timer both read-modify-write a region's state across awaits.
    state_lock = asyncio.Lock()

    async def dead_letter(event: Any, agent: str, reason: str, detail: str) -> None:
        await send_dead_letter(
            dead_letters, codec, event, reason=reason, detail=detail,
            consumer=agent, region=settings.region,
        )  # fmt: skip

    @app.agent(telemetry, name=PARTIALS_AGENT)
    async def summarise(stream: Any) -> None:
        async for events in stream.take_events(RECORD_BATCH, within=BATCH_WITHIN_S):
            blocks: list[SampleBlock] = []
            for event in events:
                try:
                    blocks.append(decode_block(codec, event.value))
                except DecodeError as exc:
                    await dead_letter(event, PARTIALS_AGENT, exc.reason, str(exc))
            sent = [
                await partials.send(
                    key=partial.serving_region.encode(), value=orjson.dumps(partial.to_json())
                )
                for partial in partials_of_blocks(blocks, rules)
            ]
            # The batch is acked when this body returns: only after Kafka has its partials.
            for delivery in sent:
                await delivery

    @app.agent(partials, name=WINDOWS_AGENT)
    async def aggregate(stream: Any) -> None:
        async for events in stream.take_events(PARTIAL_BATCH, within=BATCH_WITHIN_S):
            async with state_lock:
                await _fold_batch(events)

    async def _fold_batch(events: list[Any]) -> None:
        states: dict[bytes, RegionWindows] = {}
        for event in events:
            try:
                partial = Partial.from_json(orjson.loads(event.value))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                await dead_letter(event, WINDOWS_AGENT, "malformed-partial", repr(exc))
                continue
            key = partial.serving_region.encode()
            state = states.get(key)
            if state is None:
                state = states[key] = _load(windows.get(key), partial.serving_region)
            fold_partial(state, partial)
            last_partial_at[key] = time.monotonic()
        for key, state in states.items():
            await _publish(key, state)

    async def _publish(key: bytes, state: RegionWindows) -> None:
        await changelog_known(app, windows)
        closed = close_windows(state, rules, now_ms=now_ms(), region=settings.region)
        sent = [
            await aggregates.send(key=aggregate_key(aggregate), value=codec.encode(aggregate))
            for aggregate in closed
        ]
        for delivery in sent:
            await delivery
        windows[key] = orjson.dumps(state.to_json())
        if closed:
            log.info(
                "qoe %s: published %d aggregates; totals late %d, suppressed %d samples "
                "in %d groups",
                state.serving_region,
                len(closed),
                state.late_total,
                state.suppressed_samples_total,
                state.suppressed_groups_total,
            )

    @app.timer(interval=IDLE_CHECK_S, name="qoe-close-idle")
    async def close_idle() -> None:
        active = _active_partitions(app, partials.get_topic_name())
        quiet_ms = max(rules.window_ms, rules.lateness_ms, MIN_QUIET_MS)
        quiet_after = time.monotonic() - quiet_ms / 1000
        async with state_lock:
            for key, raw in list(windows.items()):
                partition = _partition_of(app, partials.get_topic_name(), key)
                if active is not None and partition not in active:
                    continue  # a standby copy: its owner closes it
                if last_partial_at.get(key, started_at) > quiet_after:
                    continue
                state = _load(raw, key.decode())
                if not state.windows:
                    continue
                # Quiet for a while: the bridge's clock has moved on at least as far.
                advance_watermark(state, now_ms() - quiet_ms)
                await _publish(key, state)


def _load(raw: bytes | None, serving_region: str) -> RegionWindows:
    if not raw:
        return RegionWindows(serving_region)
    return RegionWindows.from_json(orjson.loads(raw))


def _active_partitions(app: faust.App, topic: str) -> set[int] | None:
    """Partitions of topic this worker owns actively; None if the assignment is unknown."""
    try:
        return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topic}
    except AttributeError:
        return None


def _partition_of(app: faust.App, topic: str, key: bytes) -> int | None:
    try:
        return int(app.producer.key_partition(topic, key).partition)
    except (AttributeError, TypeError):
        return None
