"""The synthetic live event `liveward run` drives through the backbone, one tick per second.

Packagers beat, players report QoE (already pseudonymised, as the bridge will), viewers get
tokens, an operator revokes some, and now and then a broken record arrives that must end up
in the dead-letter topic. Pure: time and randomness come in as arguments.
"""

from __future__ import annotations

import hashlib
import hmac
import random
from collections import defaultdict
from dataclasses import dataclass, field

from streams.codec import AvroEvent
from streams.events import (
    IngestHealth,
    IngestRole,
    IngestStatus,
    QoETelemetrySample,
    RevocationRequested,
    RevocationScope,
    TokenIssued,
)

TOKEN_LIFETIME_MS = 10 * 60_000
SEGMENT_MS = 2_000
CDNS = ("cdn-a", "cdn-b")
COUNTRIES = (("DE", "BE"), ("FR", "IDF"), ("US", "NY"), ("GB", "ENG"), ("BR", "SP"))


@dataclass(frozen=True, slots=True)
class LiveEventPlan:
    """The shape of the simulated event."""

    regions: tuple[str, ...]
    content_id: str = "match-of-the-day"
    viewers: int = 500
    samples_per_tick: int = 1_000
    tokens_per_tick: int = 5
    revoke_every_ticks: int = 5
    malformed_every_ticks: int = 10


@dataclass(slots=True)
class Tick:
    """Everything one second of the event emits: events per topic, and raw broken records."""

    events: dict[str, list[AvroEvent]] = field(default_factory=lambda: defaultdict(list))
    malformed: list[tuple[str, bytes]] = field(default_factory=list)


class LiveEventSimulator:
    """Emits one Tick per call; deterministic for a given seed."""

    def __init__(self, plan: LiveEventPlan, *, seed: int, pseudonym_key: bytes) -> None:
        self.plan = plan
        self._rng = random.Random(seed)
        self._key = pseudonym_key
        self._tick = 0
        self._beats: dict[str, int] = defaultdict(int)
        self._recent_tokens: list[TokenIssued] = []

    def _id(self) -> str:
        return f"{self._rng.getrandbits(128):032x}"

    def _pseudonym(self, viewer: int) -> str:
        return hmac.new(self._key, f"viewer-{viewer}".encode(), hashlib.sha256).hexdigest()

    def tick(self, now_ms: int) -> Tick:
        out = Tick()
        self._tick += 1
        plan = self.plan
        segment = now_ms // SEGMENT_MS
        for region in plan.regions:
            for packager in ("a", "b"):
                source = f"packager-{region}-{packager}"
                self._beats[source] += 1
                out.events["ingest.health"].append(
                    IngestHealth(
                        event_id=self._id(),
                        occurred_at=now_ms,
                        region=region,
                        source_id=source,
                        role=IngestRole.PACKAGER,
                        content_id=plan.content_id,
                        beat_seq=self._beats[source],
                        last_segment_seq=segment,
                        last_segment_at=segment * SEGMENT_MS,
                        status=IngestStatus.OK,
                    )
                )
        for _ in range(plan.samples_per_tick):
            out.events["qoe.telemetry"].append(self._sample(now_ms))
        for _ in range(plan.tokens_per_tick):
            token = self._token(now_ms)
            self._recent_tokens = [*self._recent_tokens[-50:], token]
            out.events["auth.tokens-issued"].append(token)
        if self._tick % plan.revoke_every_ticks == 0 and self._recent_tokens:
            victim = self._rng.choice(self._recent_tokens)
            out.events["auth.revocations"].append(
                RevocationRequested(
                    event_id=self._id(),
                    occurred_at=now_ms,
                    region=victim.region,
                    revocation_id=self._id(),
                    scope=RevocationScope.TOKEN,
                    subject=victim.token_id,
                    reason="theft-suspected",
                    requested_by="live-event-operator",
                    covers_until=victim.expires_at,
                )
            )
        if self._tick % plan.malformed_every_ticks == 0:
            out.malformed.append(("qoe.telemetry", b"\xc3\x01" + self._rng.randbytes(12)))
        return out

    def _sample(self, now_ms: int) -> QoETelemetrySample:
        plan = self.plan
        viewer = self._rng.randrange(plan.viewers)
        region = plan.regions[viewer % len(plan.regions)]
        country, subdivision = COUNTRIES[viewer % len(COUNTRIES)]
        stalled = self._rng.random() < 0.03
        return QoETelemetrySample(
            event_id=self._id(),
            occurred_at=now_ms,
            region=region,
            session_ref=self._pseudonym(viewer)[:32],
            viewer_pseudonym=self._pseudonym(viewer),
            pseudonym_epoch="demo-epoch",
            content_id=plan.content_id,
            cdn=CDNS[viewer % len(CDNS)],
            serving_region=region,
            country=country,
            subdivision=subdivision,
            sampled_at=now_ms,
            bitrate_kbps=self._rng.choice((1_200, 2_500, 4_500, 7_800)),
            buffer_ms=0 if stalled else self._rng.randrange(4_000, 30_000),
            play_ms=0 if stalled else 1_000,
            rebuffer_count=1 if stalled else 0,
            rebuffer_ms=1_000 if stalled else 0,
            error_code="MEDIA_ERR_DECODE" if self._rng.random() < 0.002 else None,
        )

    def _token(self, now_ms: int) -> TokenIssued:
        viewer = self._rng.randrange(self.plan.viewers)
        region = self.plan.regions[viewer % len(self.plan.regions)]
        country, _ = COUNTRIES[viewer % len(COUNTRIES)]
        return TokenIssued(
            event_id=self._id(),
            occurred_at=now_ms,
            region=region,
            token_id=self._id(),
            session_id=self._id(),
            viewer_ref=self._pseudonym(viewer),
            device_ref=self._id(),
            device_class=self._rng.choice(("tv", "web", "mobile")),
            content_id=self.plan.content_id,
            country=country,
            ip_prefix="203.0.113.0/24",
            issued_at=now_ms,
            expires_at=now_ms + TOKEN_LIFETIME_MS,
            signing_key_id="demo-signing-key",
            session_version=1,
        )
