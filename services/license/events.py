"""What the license service writes to Kafka, and how long it waits for it.

- `store`: the record must be in Kafka (acks=all, idempotent) before the caller goes
  on; it returns a future the edge waits on (a thread blocks on it, the event loop
  awaits it), so no handler thread sleeps in a broker round trip it does not own.
- `signal`: produced without waiting; a failure is counted (`signal_failures`) and
  logged, never raised at the viewer.

It has its own producers rather than `streams.producer.EventProducer` because it hands
out one future per record (EventProducer's `send` blocks the calling thread, which an
asyncio edge cannot afford) and tunes records and signals apart; the shared
configuration, codec and record keys are the same.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from liveward.settings import Settings
from streams.catalog import CATALOG, TopicCatalog
from streams.codec import AvroCodec, AvroEvent, default_codec
from streams.errors import DeliveryFailed, ProducerBackpressure
from streams.producer import producer_config

log = logging.getLogger(__name__)

# A license answer waits on the broker at most this long; then the viewer gets a 503.
STORE_TIMEOUT_S = 5.0
# A grant waits on its record, so this producer sends at once (records that pile up
# while requests are in flight still share a batch) and with Nagle off: measured here
# at 500 records/s, p50 produce-to-ack went from 5.7 ms (linger 1, Nagle on, the shared
# settings' socket default) to 1.0 ms.
LINGER_MS = 0.0
# Signals (TokenUsed, refusals) wait this long to share a batch; the theft detector's
# window is minutes.
SIGNAL_LINGER_MS = 50
# Signals' delivery reports (only failures count) are served this often, not after every
# record's: each poll takes the GIL back from the event loop, and a poll per record per
# producer was two GIL hand-overs a license.
SIGNAL_POLL_S = 0.1


class LicenseEvents(Protocol):
    """Where the service's events go."""

    def store(self, topic: str, event: AvroEvent) -> Future[None]:
        """Start writing; the future completes once Kafka holds the record (or fails
        with DeliveryFailed). ProducerBackpressure when the local queue is full."""
        ...

    def signal(self, topic: str, event: AvroEvent) -> None:
        """Write without waiting; failures are counted, not raised."""
        ...


class InMemoryLicenseEvents:
    """LicenseEvents that keep what they are given, in order (tests); `fail_stores` makes
    every store fail as a broker outage would."""

    def __init__(self) -> None:
        self.stored: list[tuple[str, AvroEvent]] = []
        self.signalled: list[tuple[str, AvroEvent]] = []
        self.fail_stores = False

    def store(self, topic: str, event: AvroEvent) -> Future[None]:
        done: Future[None] = Future()
        if self.fail_stores:
            done.set_exception(DeliveryFailed(f"{topic}: broker unavailable (test)"))
        else:
            self.stored.append((topic, event))
            done.set_result(None)
        return done

    def signal(self, topic: str, event: AvroEvent) -> None:
        self.signalled.append((topic, event))

    def events(self) -> list[AvroEvent]:
        return [event for _, event in self.stored + self.signalled]


class KafkaLicenseEvents:
    """LicenseEvents on two idempotent acks=all confluent-kafka producers.

    Stored records go out at once, uncompressed, Nagle off: a viewer waits on each one.
    Signals linger and batch (`SIGNAL_LINGER_MS`): nobody waits on them, and sharing the
    records' producer would cost a broker request per signal; measured here, the
    producing alone was most of a license's CPU at 200 licenses/s.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        codec: AvroCodec | None = None,
        catalog: TopicCatalog = CATALOG,
        linger_ms: float = LINGER_MS,
        config: dict[str, Any] | None = None,
    ) -> None:
        self._codec = codec or default_codec()
        self._catalog = catalog
        client = f"liveward-license-{settings.region}"
        self._records = Producer(
            producer_config(
                settings,
                **{
                    "linger.ms": linger_ms,
                    "socket.nagle.disable": True,
                    # A batch of one ~250-B record gains nothing from lz4 but its cost.
                    "compression.type": "none",
                    "client.id": client,
                },
                **(config or {}),
            )
        )
        self._signals = Producer(
            producer_config(
                settings,
                **{"linger.ms": SIGNAL_LINGER_MS, "client.id": f"{client}-signals"},
                **(config or {}),
            )
        )
        self.signal_failures = 0
        self._closing = threading.Event()
        # One thread serves every delivery callback; callers only wait on their futures.
        self._poller = threading.Thread(target=self._serve_callbacks, daemon=True)
        self._poller.start()

    def _serve_callbacks(self) -> None:
        signals_due = 0.0
        while not self._closing.is_set():
            # Blocks on the records (a viewer waits on each); signals only count failures.
            self._records.poll(0.05)
            now = time.monotonic()
            if now >= signals_due:
                self._signals.poll(0)
                signals_due = now + SIGNAL_POLL_S

    def _produce(self, producer: Producer, topic: str, event: AvroEvent, callback: Any) -> None:
        spec = self._catalog[topic]
        key, value = spec.key_of(event), self._codec.encode(event)
        try:
            producer.produce(spec.name, value=value, key=key, on_delivery=callback)
        except BufferError as exc:
            raise ProducerBackpressure("producer queue is full", retry_after=0.5) from exc
        except KafkaException as exc:
            raise DeliveryFailed(f"{topic}: {exc}") from exc

    def store(self, topic: str, event: AvroEvent) -> Future[None]:
        done: Future[None] = Future()

        def delivered(err: KafkaError | None, msg: Message) -> None:
            if err is None:
                done.set_result(None)
            else:
                done.set_exception(DeliveryFailed(f"{msg.topic()}: {err.str()}"))

        self._produce(self._records, topic, event, delivered)
        return done

    def signal(self, topic: str, event: AvroEvent) -> None:
        try:
            self._produce(self._signals, topic, event, self._signalled)
        except (ProducerBackpressure, DeliveryFailed) as exc:
            self._signal_failed(f"{topic}: {exc}")

    def _signalled(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._signal_failed(f"{msg.topic()}: {err.str()}")

    def _signal_failed(self, why: str) -> None:
        self.signal_failures += 1
        log.warning("an event was not stored (not waited for): %s", why)

    def close(self, timeout: float = 10.0) -> None:
        self._signals.flush(timeout)
        self._records.flush(timeout)
        self._closing.set()
        self._poller.join(timeout=1.0)
