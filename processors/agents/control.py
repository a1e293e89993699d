"""The control-plane agents: heartbeats, QoE and operator commands in; failover out.

Every input must reach one decision-maker: `ingest.health` is keyed by region over three
partitions, and a Faust agent instance only sees its own partitions, yet a failover
decision weighs every region at once. So the inputs are funnelled: a small forwarding
agent per three-partition topic checks each record decodes (dead-lettering what does
not) and forwards its bytes unchanged to a one-partition catalog topic
(`control.ingest-health`, `control.qoe-aggregates`; `control.commands` has one partition
already). One agent reads all three; Faust co-partitions topics its workers all
subscribe to that have equal partition counts, so one worker holds the whole picture.
It takes each input in as it arrives (an operator command applies at once) and judges
health on a timer every 250 ms (so a region that falls silent is missed without any
event arriving), publishing `control.failover`, `control.steering` and
`control.command-outcomes`. With several workers the timer acts only where those
partitions are owned; the forwarding hop costs a few milliseconds. The funnel topics are
in the catalog so they exist, with one partition, before any worker starts (a topic a
worker creates itself may be missing from its first assignment).

What must survive a restart (pathway health, drains, known sources, published steering;
see `processors.control.durable`) lives in a one-partition table whose changelog Faust
replays at start-up; beat times are re-learnt from live beats within seconds.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
import orjson
from faust.types import TP

from liveward.settings import Settings
from processors.control import (
    ControlContext,
    ControlInput,
    ControlOutputs,
    ControlState,
    context_for,
    durable,
    ingest,
    restore,
    tick,
)
from processors.deadletters import send_dead_letter
from processors.tables import changelog_known
from processors.topics import catalog_topic
from streams.catalog import CATALOG
from streams.codec import AvroCodec, default_codec
from streams.deadletter import DEAD_LETTER_TOPIC
from streams.errors import DecodeError
from streams.events import IngestHealth, OperatorCommand, QoEAggregate
from streams.meta import new_event_id, now_ms

log = logging.getLogger(__name__)

# Each three-partition input and the one-partition topic it is funnelled into.
FUNNELS = {"ingest.health": "control.ingest-health", "qoe.aggregates": "control.qoe-aggregates"}
DECISION_INPUTS = (*FUNNELS.values(), "control.commands")
STATE_KEY = b"control-plane"
# Judge this often between inputs: detection is at most this late.
TICK_S = 0.25


class _Plane:
    """The decision-maker's state in this worker, loaded from the table on first use."""

    def __init__(self, app: faust.App, table: Any, ctx: ControlContext):
        self.app = app
        self.table = table
        self.partitions = {TP(name, 0) for name in DECISION_INPUTS}
        self.ctx = ctx
        self.lock = asyncio.Lock()
        self.state: ControlState | None = None
        self.saved: bytes | None = None

    def owned(self) -> bool:
        """True while this worker owns the inputs' partitions and its table is recovered."""
        tables: Any = self.app.tables  # the typed interface omits the recovery service
        owns = (
            not self.app.rebalancing
            and tables.recovery.completed.is_set()
            and self.partitions <= self.app.assignor.assigned_actives()
        )
        if not owns:
            # Whoever owns it next starts from the table, not from what we held.
            self.state = None
        return owns

    def current(self, now: int) -> ControlState:
        if self.state is None:
            stored = self.table.get(STATE_KEY)
            self.state = restore(orjson.loads(stored), now=now) if stored else ControlState()
            self.saved = stored
        return self.state

    def keep(self, state: ControlState) -> None:
        self.state = state
        snapshot = orjson.dumps(durable(state))
        if snapshot != self.saved:
            self.table[STATE_KEY] = snapshot
            self.saved = snapshot


def register(app: faust.App, settings: Settings) -> None:
    codec = default_codec()
    ctx = context_for(settings, new_id=new_event_id)
    inputs = app.topic(
        *DECISION_INPUTS,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=1,
        internal=False,
    )
    failover = catalog_topic(app, "control.failover")
    steering = catalog_topic(app, "control.steering")
    outcomes = catalog_topic(app, "control.command-outcomes")
    dead_letters = catalog_topic(app, DEAD_LETTER_TOPIC)
    table = app.Table(
        "control-plane",
        default=None,
        partitions=1,
        key_type=bytes,
        value_type=bytes,
        use_partitioner=True,
    )
    plane = _Plane(app, table, ctx)

    for source, funnel in FUNNELS.items():
        _register_forwarder(app, settings, codec, source, catalog_topic(app, funnel), dead_letters)

    async def publish(outputs: ControlOutputs) -> None:
        # Decisions first: whoever sees a steering state can find the decision behind it.
        for decision in outputs.decisions:
            log.info(
                "failover %s: %s -> %s (%s)", decision.content_id, decision.from_pathway,
                decision.to_pathway, decision.reason,
            )  # fmt: skip
            await _send(failover, "control.failover", codec, decision)
        for state in outputs.steering:
            await _send(steering, "control.steering", codec, state)
        for content in outputs.retired:
            # The stream ended: players of a restart of it get the '*' default, not stale news.
            await (await steering.send(key=content.encode(), value=None))
        if outputs.outcome is not None:
            await _send(outcomes, "control.command-outcomes", codec, outputs.outcome)

    @app.agent(inputs, name="control-plane")
    async def decide(stream: Any) -> None:
        async for event in stream.events():
            try:
                received: Any = codec.decode(event.value)
            except DecodeError as exc:
                await send_dead_letter(
                    dead_letters, codec, event, reason=exc.reason, detail=str(exc),
                    consumer="control-plane", region=settings.region,
                )  # fmt: skip
                continue
            if not isinstance(received, IngestHealth | QoEAggregate | OperatorCommand):
                continue
            control_input: ControlInput = received
            async with plane.lock:
                arrived = now_ms()
                state, outputs = ingest(
                    plane.current(arrived), control_input, arrived_at=arrived, ctx=ctx
                )
                await publish(outputs)
                await changelog_known(app, table)
                plane.keep(state)

    @app.timer(interval=TICK_S, name="control-plane-tick")
    async def judge() -> None:
        if not plane.owned():
            return
        async with plane.lock:
            now = now_ms()
            state, outputs = tick(plane.current(now), now=now, ctx=ctx)
            await publish(outputs)
            await changelog_known(app, table)
            plane.keep(state)


def _register_forwarder(
    app: faust.App,
    settings: Settings,
    codec: AvroCodec,
    name: str,
    funnel: Any,
    dead_letters: Any,
) -> None:
    source = catalog_topic(app, name)
    event_type = CATALOG[name].event_type
    agent_name = f"control-funnel-{name}"

    async def forward(stream: Any) -> None:
        async for event in stream.events():
            try:
                codec.decode_as(event.value, event_type)
            except DecodeError as exc:
                await send_dead_letter(
                    dead_letters, codec, event, reason=exc.reason, detail=str(exc),
                    consumer=agent_name, region=settings.region,
                )  # fmt: skip
                continue
            await (await funnel.send(key=event.key, value=event.value))

    app.agent(source, name=agent_name)(forward)


async def _send(topic: Any, name: str, codec: AvroCodec, event: Any) -> None:
    await (await topic.send(key=CATALOG[name].key_of(event), value=codec.encode(event)))
