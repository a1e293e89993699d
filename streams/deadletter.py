"""Dead letters: records a worker gave up on, kept on their own topic with the reason."""

from __future__ import annotations

from streams.events import DeadLetter
from streams.meta import new_event_id, now_ms
from streams.producer import EventProducer

DEAD_LETTER_TOPIC = "liveward.dead-letter"
_MAX_DETAIL = 2000


def dead_letter(
    *,
    region: str,
    source_topic: str,
    source_partition: int,
    source_offset: int,
    key: bytes | None,
    value: bytes | None,
    reason_code: str,
    reason_detail: str,
    consumer: str,
) -> DeadLetter:
    """The DeadLetter event for one record, stamped now."""
    return DeadLetter(
        event_id=new_event_id(),
        occurred_at=now_ms(),
        region=region,
        source_topic=source_topic,
        source_partition=source_partition,
        source_offset=source_offset,
        original_key=key,
        original_value=value,
        reason_code=reason_code,
        reason_detail=reason_detail[:_MAX_DETAIL],
        consumer=consumer,
    )


class DeadLetterPublisher:
    """Sends DeadLetter events and waits for Kafka to confirm each one."""

    def __init__(self, producer: EventProducer, region: str) -> None:
        self._producer = producer
        self._region = region

    def publish(
        self,
        *,
        source_topic: str,
        source_partition: int,
        source_offset: int,
        key: bytes | None,
        value: bytes | None,
        reason_code: str,
        reason_detail: str,
        consumer: str,
    ) -> DeadLetter:
        letter = dead_letter(
            region=self._region,
            source_topic=source_topic,
            source_partition=source_partition,
            source_offset=source_offset,
            key=key,
            value=value,
            reason_code=reason_code,
            reason_detail=reason_detail,
            consumer=consumer,
        )
        self._producer.send(DEAD_LETTER_TOPIC, letter)
        return letter
