"""Dead-lettering from Faust agents: an undecodable event is kept with its reason."""

from __future__ import annotations

from typing import Any

from streams.codec import AvroCodec
from streams.deadletter import dead_letter


async def send_dead_letter(
    topic: Any,
    codec: AvroCodec,
    event: Any,
    *,
    reason: str,
    detail: str,
    consumer: str,
    region: str,
) -> None:
    """Send the raw record behind a Faust event to the dead-letter topic and wait for the ack."""
    message = event.message
    letter = dead_letter(
        region=region,
        source_topic=message.topic,
        source_partition=message.partition,
        source_offset=message.offset,
        key=message.key,
        value=message.value,
        reason_code=reason,
        reason_detail=detail,
        consumer=consumer,
    )
    delivery = await topic.send(key=message.topic.encode(), value=codec.encode(letter))
    await delivery
