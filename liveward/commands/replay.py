"""`liveward replay`: rebuild derived state from the topics alone and compare it with the live one.

Two states are rebuilt, each by the same pure functions the agents run:

- the control plane: `ingest.health`, `qoe.aggregates` and `control.commands` are read
  from their beginning (a fresh consumer group that commits nothing), merged in the order
  the records reached Kafka (their timestamps stand for the arrival times the worker
  saw), and folded with `processors.control.fold_log` up to now. Compared with the live
  `control.steering` (the priority per content) and `control.failover` (the latest
  decision per content: from, to, reason, operator);
- the revocation list: `auth.revocations` folded with `fold_request`, each request at its
  record's timestamp, then what has expired dropped. Compared with the live
  `auth.revocation-list` (revocation ids, when revoked, until when).

A replay cannot see what a worker did not record, so it can only disagree where the
worker's wall clock judged an input differently from the record's timestamp: a source
whose clock is off (its producer stamps the record with the same clock), or a worker
started behind a backlog. Exit status 1 on any mismatch.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from rich.console import Console
from rich.table import Table

from liveward.settings import Settings, load_settings
from processors.control import ControlInput, context_for, fold_log
from processors.revocation_list import entry_key, fold_request
from streams.codec import AvroEvent, default_codec
from streams.consumer import consumer_config
from streams.errors import DecodeError, StreamsError
from streams.events import (
    FailoverDecision,
    IngestHealth,
    OperatorCommand,
    QoEAggregate,
    RevocationListEntry,
    RevocationRequested,
    SteeringState,
)
from streams.meta import new_event_id, now_ms
from streams.views import CompactedTopicView

CONTROL_INPUTS = ("ingest.health", "qoe.aggregates", "control.commands")
# Entries this close to expiry may be swept from the live list at any moment: not compared.
EXPIRY_MARGIN_MS = 10_000


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """A decoded record with the time Kafka stamped on it and where it was."""

    timestamp_ms: int
    topic: str
    partition: int
    offset: int
    event: AvroEvent


@dataclass(frozen=True, slots=True)
class TopicLog:
    events: list[LoggedEvent]
    undecodable: int


def read_topic(
    settings: Settings, topic: str, *, since_ms: int | None = None, timeout: float = 30.0
) -> TopicLog:
    """Every record of `topic` (or those from `since_ms` on) up to its end when called.

    A fresh consumer group that commits nothing: the live consumers never notice.
    Records that do not decode are counted (the agents dead-letter them).
    """
    codec = default_codec()
    consumer = Consumer(consumer_config(settings, f"replay-{uuid.uuid4().hex}"))
    try:
        metadata = consumer.list_topics(topic, timeout=timeout)
        topic_meta = metadata.topics.get(topic)
        if topic_meta is None or topic_meta.error is not None:
            raise StreamsError(f"topic {topic} does not exist", reason="unknown-topic")
        ends: dict[int, int] = {}
        starts: list[TopicPartition] = []
        for partition in sorted(topic_meta.partitions):
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout
            )
            if high > low:
                ends[partition] = high
                starts.append(TopicPartition(topic, partition, OFFSET_BEGINNING))
        if since_ms is not None and starts:
            found = consumer.offsets_for_times(
                [TopicPartition(topic, tp.partition, since_ms) for tp in starts], timeout=timeout
            )
            # A partition with nothing since then (offset -1) has nothing to read.
            starts = [tp for tp in found if tp.offset >= 0]
            ends = {tp.partition: ends[tp.partition] for tp in starts}
        consumer.assign(starts)
        return _drain(consumer, codec, topic, ends, timeout)
    finally:
        consumer.close()


def _drain(
    consumer: Consumer,
    codec: Any,
    topic: str,
    ends: dict[int, int],
    timeout: float,
) -> TopicLog:
    events: list[LoggedEvent] = []
    undecodable = 0
    pending = dict(ends)
    deadline = time.monotonic() + timeout
    while pending:
        if time.monotonic() > deadline:
            raise StreamsError(f"{topic} could not be read to its end", reason="read-timeout")
        for message in consumer.consume(num_messages=5000, timeout=0.5):
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    raise StreamsError(f"{topic}: {error.str()}", reason="read-failed")
                continue
            partition, offset = message.partition() or 0, message.offset() or 0
            if partition not in pending or offset >= pending[partition]:
                continue
            if offset + 1 >= pending[partition]:
                del pending[partition]
            value = message.value()
            if value is None:
                continue
            try:
                event = codec.decode(value)
            except DecodeError:
                undecodable += 1
                continue
            events.append(LoggedEvent(message.timestamp()[1], topic, partition, offset, event))
    return TopicLog(events, undecodable)


def control_log(logs: Iterable[TopicLog]) -> list[tuple[int, ControlInput]]:
    """The control plane's inputs in the order they reached Kafka."""
    merged = sorted(
        (e for log in logs for e in log.events),
        key=lambda e: (e.timestamp_ms, CONTROL_INPUTS.index(e.topic), e.partition, e.offset),
    )
    return [
        (e.timestamp_ms, e.event)
        for e in merged
        if isinstance(e.event, IngestHealth | QoEAggregate | OperatorCommand)
    ]


@dataclass
class Comparison:
    """Rows of (state, key, live, replayed) and whether each agrees."""

    rows: list[tuple[str, str, str, str, bool]] = field(default_factory=list)

    def add(self, state: str, key: str, live: object, replayed: object) -> None:
        self.rows.append((state, key, _show(live), _show(replayed), live == replayed))

    @property
    def mismatches(self) -> int:
        return sum(not ok for *_, ok in self.rows)


def _show(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, tuple) and all(isinstance(v, str) for v in value):
        return " > ".join(value)
    return str(value)


def _live_view(settings: Settings, topic: str, event_type: type[Any], timeout: float) -> Any:
    view = CompactedTopicView(settings, topic, event_type)
    view.start(timeout)
    if not view.wait_ready(timeout):
        view.close()
        raise StreamsError(f"{topic} could not be read to its end", reason="read-timeout")
    return view


def compare_control_plane(settings: Settings, timeout: float) -> Comparison:
    """The control plane rebuilt from its inputs next to the live compacted state."""
    ctx = context_for(settings, new_id=new_event_id)
    steering = _live_view(settings, "control.steering", SteeringState, timeout)
    decisions = _live_view(settings, "control.failover", FailoverDecision, timeout)
    try:
        inputs = control_log(read_topic(settings, t, timeout=timeout) for t in CONTROL_INPUTS)
        state, produced = fold_log(inputs, until=now_ms(), ctx=ctx)
        latest: dict[str, FailoverDecision] = {}
        for outputs in produced:
            for decision in outputs.decisions:
                latest[decision.content_id] = decision
        comparison = Comparison()
        live_steering = {k: v.pathway_priority for k, v in steering.items()}
        replayed_steering = {k: s.priority for k, s in state.steering.items()}
        for content in sorted(live_steering.keys() | replayed_steering.keys()):
            comparison.add(
                "steering", content, live_steering.get(content), replayed_steering.get(content)
            )
        live_latest = {k: _gist(v) for k, v in decisions.items()}
        replayed_latest = {k: _gist(v) for k, v in latest.items()}
        for content in sorted(live_latest.keys() | replayed_latest.keys()):
            comparison.add(
                "last decision", content, live_latest.get(content), replayed_latest.get(content)
            )
        return comparison
    finally:
        steering.close()
        decisions.close()


def _gist(decision: FailoverDecision) -> str:
    return f"{decision.from_pathway} -> {decision.to_pathway} ({decision.reason})"


def compare_revocation_list(settings: Settings, timeout: float) -> Comparison:
    """The revocation list refolded from every request next to the live compacted list."""
    live = _live_view(settings, "auth.revocation-list", RevocationListEntry, timeout)
    try:
        requests = read_topic(settings, "auth.revocations", timeout=timeout).events
        rebuilt: dict[str, RevocationListEntry] = {}
        for logged in sorted(requests, key=lambda e: (e.partition, e.offset)):
            request = logged.event
            if not isinstance(request, RevocationRequested):
                continue
            key = entry_key(request.scope, request.subject)
            entry = fold_request(
                rebuilt.get(key), request, now_ms=logged.timestamp_ms, event_id=new_event_id()
            )
            if entry is not None:
                rebuilt[key] = entry
        horizon = now_ms() + EXPIRY_MARGIN_MS
        live_entries = {k: _facts(e) for k, e in live.items() if e.expires_at > horizon}
        rebuilt_entries = {k: _facts(e) for k, e in rebuilt.items() if e.expires_at > horizon}
        comparison = Comparison()
        differing = {
            k
            for k in live_entries.keys() | rebuilt_entries.keys()
            if live_entries.get(k) != rebuilt_entries.get(k)
        }
        for key in sorted(differing):
            comparison.add("revocation", key, live_entries.get(key), rebuilt_entries.get(key))
        agreeing = len(live_entries.keys() & rebuilt_entries.keys()) - len(
            differing & live_entries.keys() & rebuilt_entries.keys()
        )
        comparison.add("revocation", "entries agreeing", agreeing, agreeing)
        return comparison
    finally:
        live.close()


def _facts(entry: RevocationListEntry) -> tuple[str, ...]:
    return (
        ",".join(sorted(entry.revocation_ids)),
        f"revoked {entry.revoked_at}",
        f"until {entry.expires_at}",
    )


def replay(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for Kafka.")] = 60.0,
    attempts: Annotated[
        int, typer.Option(help="Passes before a mismatch counts (the live state may lag).")
    ] = 3,
) -> None:
    """Rebuild the control plane's state and the revocation list from the topics alone,
    and show them next to the live compacted state (exit 1 on a mismatch)."""
    settings = load_settings()
    console = Console(soft_wrap=True)
    for attempt in range(1, attempts + 1):
        comparisons = [
            compare_control_plane(settings, timeout),
            compare_revocation_list(settings, timeout),
        ]
        mismatches = sum(c.mismatches for c in comparisons)
        if mismatches == 0 or attempt == attempts:
            break
        console.print(f"{mismatches} mismatches on pass {attempt}; the live state may lag")
        time.sleep(2.0)
    table = Table("state", "key", "live", "replayed", "")
    for comparison in comparisons:
        for state, key, live, replayed, ok in comparison.rows:
            table.add_row(state, key, live, replayed, "[green]=[/]" if ok else "[red]≠[/]")
    console.print(table)
    if mismatches:
        console.print(f"[red]{mismatches} mismatches[/] between the live and the replayed state")
        raise typer.Exit(1)
    console.print("[green]replay matches the live state[/]")
