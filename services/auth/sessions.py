"""Active playback sessions per viewer, for the concurrent-stream limit.

A session is active while a token issued for it is unexpired. Every auth instance
follows `auth.tokens-issued` from one token lifetime back, so a viewer's sessions count
wherever they were started.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition

from liveward.settings import Settings
from services.access.revocation import TokenIdentity
from streams.codec import default_codec
from streams.consumer import consumer_config
from streams.errors import DecodeError
from streams.events import TokenIssued
from streams.meta import now_ms

log = logging.getLogger(__name__)

TOKENS_ISSUED_TOPIC = "auth.tokens-issued"


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A session's newest token: when it expires, its session version, what can revoke it."""

    expires_at_ms: int
    session_version: int
    token: TokenIdentity


class ActiveSessions:
    """viewer_ref → {session_id: newest token}; thread-safe, expired sessions pruned."""

    def __init__(self) -> None:
        self._sessions: dict[str, dict[str, SessionRecord]] = {}
        self._lock = threading.Lock()

    def note(self, issued: TokenIssued) -> None:
        record = SessionRecord(
            expires_at_ms=issued.expires_at,
            session_version=issued.session_version,
            token=TokenIdentity(
                token_id=issued.token_id,
                session_id=issued.session_id,
                viewer_ref=issued.viewer_ref,
                device_ref=issued.device_ref,
                issued_at_ms=issued.issued_at,
            ),
        )
        with self._lock:
            sessions = self._sessions.setdefault(issued.viewer_ref, {})
            known = sessions.get(issued.session_id)
            if known is None or known.expires_at_ms <= record.expires_at_ms:
                sessions[issued.session_id] = record

    def count(
        self,
        viewer_ref: str,
        *,
        now_ms: int,
        excluding: str | None = None,
        alive: Callable[[SessionRecord], bool] = lambda _: True,
    ) -> int:
        """Sessions of viewer_ref with an unexpired token that `alive` accepts (not
        revoked, current session version), other than `excluding`."""
        with self._lock:
            sessions = self._sessions.get(viewer_ref)
            if not sessions:
                return 0
            for session_id in [s for s, r in sessions.items() if r.expires_at_ms <= now_ms]:
                del sessions[session_id]
            records = [r for s, r in sessions.items() if s != excluding]
        return sum(1 for record in records if alive(record))


class IssuedTokensFollower:
    """Feeds ActiveSessions from `auth.tokens-issued`, starting one token lifetime back."""

    def __init__(
        self,
        settings: Settings,
        sessions: ActiveSessions,
        *,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._sessions = sessions
        self._since_ms = clock() - settings.auth.token_lifetime_s * 1000 * 2
        self._consumer = Consumer(
            consumer_config(
                settings, f"auth-sessions-{uuid.uuid4().hex}", **{"fetch.wait.max.ms": 50}
            )
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="issued-tokens", daemon=True)

    def start(self, timeout: float = 30.0) -> None:
        meta = self._consumer.list_topics(TOKENS_ISSUED_TOPIC, timeout=timeout)
        partitions = meta.topics[TOKENS_ISSUED_TOPIC].partitions
        wanted = [TopicPartition(TOKENS_ISSUED_TOPIC, p, self._since_ms) for p in partitions]
        # offsets_for_times turns "since this time" into an offset per partition.
        self._consumer.assign(self._consumer.offsets_for_times(wanted, timeout=timeout))
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._consumer.close()

    def _run(self) -> None:
        codec = default_codec()
        while not self._stop.is_set():
            for message in self._consumer.consume(num_messages=500, timeout=0.2):
                if message.error() is not None or message.value() is None:
                    continue
                try:
                    issued = codec.decode_as(message.value() or b"", TokenIssued)
                except DecodeError as exc:
                    log.warning("skipping an undecodable TokenIssued: %s", exc)
                    continue
                self._sessions.note(issued)
