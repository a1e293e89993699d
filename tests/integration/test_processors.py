"""The Faust worker on the real broker: revocation requests in, the revocation list out."""

from __future__ import annotations

import time

from confluent_kafka import Consumer

from infra.processes import ManagedProcess
from liveward.settings import Settings
from streams.codec import default_codec
from streams.consumer import consumer_config
from streams.deadletter import DEAD_LETTER_TOPIC
from streams.events import (
    DeadLetter,
    ReissueNotice,
    RevocationListEntry,
    RevocationRequested,
    RevocationScope,
    TokenUsed,
    UseDecision,
)
from streams.meta import new_event_id, now_ms
from streams.producer import EventProducer


def _request(subject: str, *, rid: str | None = None, ttl_ms: int = 600_000) -> RevocationRequested:
    return RevocationRequested(
        event_id=new_event_id(),
        occurred_at=now_ms(),
        region="eu-west",
        revocation_id=rid or new_event_id(),
        scope=RevocationScope.SESSION,
        subject=subject,
        reason="theft-suspected",
        requested_by="test",
        covers_until=now_ms() + ttl_ms,
    )


def _read(
    settings: Settings, topic: str, match: object, want: int, timeout: float = 60.0
) -> list[tuple[bytes | None, bytes | None]]:
    consumer = Consumer(consumer_config(settings, f"probe-{new_event_id()}"))
    consumer.subscribe([topic])
    found: list[tuple[bytes | None, bytes | None]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(found) < want and time.monotonic() < deadline:
            for message in consumer.consume(200, timeout=0.5):
                if message.error() is None and match(message):  # type: ignore[operator]
                    found.append((message.key(), message.value()))
    finally:
        consumer.close()
    return found


def test_requests_fold_into_one_list_entry_per_subject(worker: Settings) -> None:
    subject = f"session-{new_event_id()}"
    producer = EventProducer(worker)
    first, second = _request(subject, ttl_ms=300_000), _request(subject, ttl_ms=900_000)
    producer.send("auth.revocations", first)
    producer.send("auth.revocations", second)
    producer.send("auth.revocations", second)  # a replay changes nothing

    key = f"SESSION|{subject}".encode()
    records = _read(worker, "auth.revocation-list", lambda m: m.key() == key, want=2)
    entries = [default_codec().decode_as(v or b"", RevocationListEntry) for _, v in records]
    assert [e.revocation_ids for e in entries] == [
        (first.revocation_id,),
        (first.revocation_id, second.revocation_id),
    ]
    assert entries[-1].expires_at == second.covers_until
    # The replay produced nothing more.
    assert len(_read(worker, "auth.revocation-list", lambda m: m.key() == key, 3, 5.0)) == 2


def test_an_undecodable_request_is_dead_lettered_and_the_agent_keeps_going(
    worker: Settings,
) -> None:
    producer = EventProducer(worker)
    marker = new_event_id().encode()
    producer.send_raw("auth.revocations", [(marker, b"\xc3\x01garbage-after-the-marker")])
    subject = f"session-{new_event_id()}"
    producer.send("auth.revocations", _request(subject))

    letters = _read(worker, DEAD_LETTER_TOPIC, lambda m: marker in (m.value() or b""), 1)
    letter = default_codec().decode_as(letters[0][1] or b"", DeadLetter)
    assert (letter.source_topic, letter.original_key) == ("auth.revocations", marker)
    assert letter.reason_code in {"unknown-fingerprint", "truncated"}
    key = f"SESSION|{subject}".encode()
    assert _read(worker, "auth.revocation-list", lambda m: m.key() == key, 1)


def test_expired_entries_are_tombstoned(worker: Settings) -> None:
    subject = f"session-{new_event_id()}"
    EventProducer(worker).send("auth.revocations", _request(subject, ttl_ms=2_000))
    key = f"SESSION|{subject}".encode()
    records = _read(worker, "auth.revocation-list", lambda m: m.key() == key, 2, timeout=60)
    assert len(records) == 2
    assert records[0][1] is not None
    assert records[1][1] is None, "the sweep should have written a tombstone"


def test_the_worker_survived_everything_above(worker: Settings) -> None:
    process = ManagedProcess(
        name="worker",
        pid_file=worker.state_dir / "pids" / "test-worker.pid",
        log_file=worker.log_dir / "test-worker.log",
    )
    log = process.log_file.read_text(errors="replace")
    assert process.is_running(), log[-3000:]
    assert "Traceback" not in log, log[-3000:]


def _used(session: str, *, country: str, network: str) -> TokenUsed:
    return TokenUsed(
        event_id=new_event_id(),
        occurred_at=now_ms(),
        region="eu-west",
        token_id=f"token-{session}",
        session_id=session,
        viewer_ref=f"viewer-{session}",
        device_ref="device-1",
        content_id="match-1",
        service="test",
        country=country,
        ip_prefix=network,
        asn=64500,
        decision=UseDecision.ALLOWED,
        reason="allowed",
    )


def test_conflicting_uses_revoke_the_session_and_notify_the_viewer(worker: Settings) -> None:
    session = f"session-{new_event_id()}"
    producer = EventProducer(worker)
    producer.send("auth.tokens-used", _used(session, country="DE", network="203.0.113.0/24"))
    producer.send("auth.tokens-used", _used(session, country="DE", network="203.0.113.0/24"))
    producer.send("auth.tokens-used", _used(session, country="BR", network="198.51.100.0/24"))

    key = f"SESSION|{session}".encode()
    (record,) = _read(worker, "auth.revocation-list", lambda m: m.key() == key, want=1)
    entry = default_codec().decode_as(record[1] or b"", RevocationListEntry)
    assert entry.reason == "theft-impossible-travel"

    viewer = f"viewer-{session}".encode()
    (raw,) = _read(worker, "auth.reissue-notices", lambda m: m.key() == viewer, want=1)
    notice = default_codec().decode_as(raw[1] or b"", ReissueNotice)
    assert (notice.session_id, notice.rule) == (session, "impossible-travel")
    assert len(notice.evidence) == 2


def test_a_viewer_in_one_place_is_left_alone(worker: Settings) -> None:
    session = f"session-{new_event_id()}"
    producer = EventProducer(worker)
    for _ in range(5):
        producer.send("auth.tokens-used", _used(session, country="DE", network="203.0.113.0/24"))
    key = f"SESSION|{session}".encode()
    assert _read(worker, "auth.revocation-list", lambda m: m.key() == key, want=1, timeout=8) == []
