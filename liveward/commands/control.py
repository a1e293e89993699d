"""`liveward control`: drain and restore regions or pathways, and see the control plane's state.

`drain` and `restore` publish an `OperatorCommand` on `control.commands` and wait for the
control plane's `OperatorCommandOutcome`: exit 0 when applied (or nothing to do), 1 when
refused (for instance `last-healthy-region`), 2 when no answer came (is a worker running?).
"""

from __future__ import annotations

import getpass
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated

import typer
from confluent_kafka import Consumer, KafkaError, TopicPartition
from rich.console import Console
from rich.table import Table

from liveward.commands.replay import CONTROL_INPUTS, control_log, read_topic
from liveward.errors import LivewardError
from liveward.settings import Settings, load_settings
from processors.control import (
    DEFAULT_CONTENT,
    ControlState,
    context_for,
    fold_log,
    is_drained,
    pathway_condition,
)
from streams.codec import default_codec
from streams.consumer import consumer_config
from streams.errors import DecodeError
from streams.events import (
    FailoverDecision,
    OperatorAction,
    OperatorCommand,
    OperatorCommandOutcome,
    SteeringState,
)
from streams.meta import new_event_id, now_ms
from streams.producer import EventProducer
from streams.views import CompactedTopicView

app = typer.Typer(
    help="The control plane: drain or restore a region, see health, decisions and steering.",
    no_args_is_help=True,
)

OUTCOMES_TOPIC = "control.command-outcomes"

Reason = Annotated[str, typer.Option(help="Why, for the record.")]
Operator = Annotated[str | None, typer.Option(help="Who asks (default: your login).")]
Wait = Annotated[float, typer.Option(help="Seconds to wait for the control plane's answer.")]


class NoAnswer(LivewardError):
    """The control plane did not answer a command in time."""

    reason = "no-answer"


@app.command()
def drain(
    target: Annotated[str, typer.Argument(help="A region, or one pathway '<region>.<cdn>'.")],
    reason: Reason = "operator drain",
    operator: Operator = None,
    wait: Wait = 15.0,
) -> None:
    """Move players away from a region (or one pathway) now; refused if it is the last
    healthy one."""
    _command(OperatorAction.DRAIN, target, reason, operator, wait)


@app.command()
def restore(
    target: Annotated[str, typer.Argument(help="A drained region or pathway.")],
    reason: Reason = "operator restore",
    operator: Operator = None,
    wait: Wait = 15.0,
) -> None:
    """Let players back onto a drained region (or pathway)."""
    _command(OperatorAction.RESTORE, target, reason, operator, wait)


def _command(
    action: OperatorAction, target: str, reason: str, operator: str | None, wait: float
) -> None:
    settings = load_settings()
    console = Console(soft_wrap=True)
    command = OperatorCommand(
        event_id=new_event_id(),
        occurred_at=now_ms(),
        region=settings.region,
        command_id=new_event_id(),
        action=action,
        target=target,
        operator=operator or getpass.getuser(),
        reason=reason,
    )
    # Listen from the topic's current end, fixed before asking, so the answer cannot slip
    # by (OFFSET_END would only be resolved at the first fetch, maybe after the answer).
    consumer = Consumer(consumer_config(settings, f"control-cli-{uuid.uuid4().hex}"))
    _, end = consumer.get_watermark_offsets(TopicPartition(OUTCOMES_TOPIC, 0), timeout=wait)
    consumer.assign([TopicPartition(OUTCOMES_TOPIC, 0, end)])
    producer = EventProducer(settings)
    try:
        started = time.monotonic()
        producer.send("control.commands", command)
        outcome = _await_outcome(consumer, command.command_id, wait)
        took = time.monotonic() - started
    finally:
        producer.close()
        consumer.close()
    colour = "green" if outcome.accepted else "red"
    console.print(
        f"[{colour}]{outcome.reason}[/] {outcome.detail} "
        f"({len(outcome.decision_ids)} decisions, answered in {took * 1000:.0f} ms)"
    )
    for decision_id in outcome.decision_ids:
        console.print(f"  decision {decision_id}")
    if not outcome.accepted:
        raise typer.Exit(1)


def _await_outcome(consumer: Consumer, command_id: str, wait: float) -> OperatorCommandOutcome:
    codec = default_codec()
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        for message in consumer.consume(num_messages=100, timeout=0.2):
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    raise NoAnswer(f"{OUTCOMES_TOPIC}: {error.str()}")
                continue
            try:
                outcome = codec.decode_as(message.value() or b"", OperatorCommandOutcome)
            except DecodeError:
                continue
            if outcome.command_id == command_id:
                return outcome
    raise NoAnswer(f"no answer from the control plane within {wait:g} s (is a worker running?)")


@app.command()
def status(
    window: Annotated[
        float, typer.Option(help="Seconds of heartbeats and QoE to judge health from.")
    ] = 120.0,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for Kafka.")] = 30.0,
) -> None:
    """Health per pathway as the control plane's rules see it now (from the last `window`
    seconds of inputs), drains, the latest decisions and the steering per content."""
    settings = load_settings()
    console = Console(soft_wrap=True)
    now = now_ms()
    state = _recent_state(settings, now, window, timeout)
    console.print(_health_table(settings, state, now))
    if state.drains:
        console.print(f"drained: {', '.join(sorted(state.drains))}")
    counted = ", ".join(f"{k} {v}" for k, v in sorted(state.counters.items()))
    if counted:
        console.print(f"inputs counted and set aside: {counted}")
    decisions: CompactedTopicView[FailoverDecision] = CompactedTopicView(
        settings, "control.failover", FailoverDecision
    )
    steering: CompactedTopicView[SteeringState] = CompactedTopicView(
        settings, "control.steering", SteeringState
    )
    try:
        for view in (decisions, steering):
            view.start(timeout)
            view.wait_ready(timeout)
        table = Table("content", "steering (most preferred first)", "version", "latest decision")
        contents = sorted({k for k, _ in steering.items()} | {k for k, _ in decisions.items()})
        for content in contents:
            entry, decision = steering.get(content), decisions.get(content)
            table.add_row(
                content,
                " > ".join(entry.pathway_priority) if entry else "-",
                str(entry.version) if entry else "-",
                _describe(decision) if decision else "-",
            )
        console.print(table)
    finally:
        decisions.close()
        steering.close()


def _recent_state(settings: Settings, now: int, window: float, timeout: float) -> ControlState:
    """The rules' view of the last `window` seconds (every command: drains never expire)."""
    since = now - round(window * 1000)
    logs = [
        read_topic(settings, topic, since_ms=None if topic == "control.commands" else since,
                   timeout=timeout)
        for topic in CONTROL_INPUTS
    ]  # fmt: skip
    state, _ = fold_log(
        control_log(logs), until=now, ctx=context_for(settings, new_id=new_event_id)
    )
    return state


def _health_table(settings: Settings, state: ControlState, now: int) -> Table:
    ctx = context_for(settings, new_id=new_event_id)
    at = state.evaluated_at
    table = Table("content", "pathway", "health now", "evidence")
    for content in (DEFAULT_CONTENT, *sorted(state.contents)):
        for pathway in ctx.pathway_order:
            condition = pathway_condition(state, pathway, content, at, ctx.rules)
            drained = " (drained)" if is_drained(pathway, state.drains) else ""
            if condition is None:
                table.add_row(content, pathway, f"[green]ok[/]{drained}", "")
                continue
            evidence = ", ".join(
                f"{e.metric} {e.value:g} (limit {e.threshold:g})" for e in condition.evidence
            )
            bad_for = (at - condition.since) / 1000
            table.add_row(
                content, pathway, f"[red]{condition.reason}[/] {bad_for:.1f} s{drained}", evidence
            )
    if at < now - 5_000:
        table.caption = f"judged as of {_utc(at)}: no heartbeats since"
    return table


def _describe(decision: FailoverDecision) -> str:
    return (
        f"{decision.from_pathway} -> {decision.to_pathway} ({decision.reason}) "
        f"at {_utc(decision.decided_at)}"
    )


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%H:%M:%S.%f")[:-3] + " UTC"
