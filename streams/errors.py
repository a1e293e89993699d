"""Errors raised while encoding, decoding, producing or consuming events."""

from liveward.errors import LivewardError


class StreamsError(LivewardError):
    """Root of every error in streams/."""

    reason = "streams-error"


class EncodeError(StreamsError):
    """An event could not be encoded (no schema, or it does not match its schema)."""

    reason = "encode-error"


class DecodeError(StreamsError):
    """Bytes could not be decoded; `reason` says why (bad-magic, unknown-fingerprint, ...)."""

    reason = "decode-error"


class DeliveryFailed(StreamsError):
    """Kafka did not confirm a record; the caller must not report it as accepted."""

    reason = "delivery-failed"


class ProducerBackpressure(StreamsError):
    """The producer's local queue is full; try again after `retry_after` seconds."""

    reason = "backpressure"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BrokerUnavailable(StreamsError):
    """No broker answered at the configured bootstrap servers."""

    reason = "broker-unavailable"


class TopicDrift(StreamsError):
    """An existing topic's configuration differs from the catalog."""

    reason = "topic-drift"
