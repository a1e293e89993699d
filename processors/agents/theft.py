"""The theft agent: token uses in; on conflicting uses, a revocation and a re-issue notice."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import faust
import orjson

from liveward.settings import Settings
from processors.deadletters import send_dead_letter
from processors.tables import changelog_known
from processors.theft import SessionUses, TheftRules, Use, observe_use
from processors.topics import catalog_topic
from streams.catalog import CATALOG
from streams.codec import default_codec
from streams.deadletter import DEAD_LETTER_TOPIC
from streams.errors import DecodeError
from streams.events import ReissueNotice, RevocationRequested, RevocationScope, TokenUsed
from streams.meta import new_event_id

AGENT = "detect-theft"


def _load(raw: bytes | None) -> SessionUses:
    if not raw:
        return SessionUses()
    data = orjson.loads(raw)
    return SessionUses(uses=tuple(Use(**u) for u in data["uses"]), flagged=data["flagged"])


def _dump(state: SessionUses) -> bytes:
    return orjson.dumps(asdict(state))


def register(app: faust.App, settings: Settings) -> None:
    codec = default_codec()
    rules = TheftRules(
        window_ms=settings.auth.theft_window_s * 1000,
        max_networks=settings.auth.theft_max_networks,
    )
    # Every token a session could hold has expired this long after its last use.
    covers_ms = 2 * settings.auth.token_lifetime_s * 1000
    uses_topic = catalog_topic(app, "auth.tokens-used")
    revocations = catalog_topic(app, "auth.revocations")
    notices = catalog_topic(app, "auth.reissue-notices")
    dead_letters = catalog_topic(app, DEAD_LETTER_TOPIC)
    revocation_key = CATALOG["auth.revocations"].key_of
    # Keyed by session like the input topic; the value is the detector's own JSON state.
    sessions = app.Table(
        "theft-sessions",
        default=None,
        partitions=uses_topic.partitions,
        key_type=bytes,
        value_type=bytes,
        use_partitioner=True,
    )

    @app.agent(uses_topic, name=AGENT)
    async def detect_theft(stream: Any) -> None:
        async for event in stream.events():
            try:
                used = codec.decode_as(event.value, TokenUsed)
            except DecodeError as exc:
                await send_dead_letter(
                    dead_letters, codec, event, reason=exc.reason, detail=str(exc),
                    consumer=AGENT, region=settings.region,
                )  # fmt: skip
                continue
            key = used.session_id.encode()
            state, verdict = observe_use(_load(sessions.get(key)), Use.of(used), rules)
            await changelog_known(app, sessions)
            sessions[key] = _dump(state)
            if verdict is None:
                continue
            revocation = RevocationRequested(
                event_id=new_event_id(),
                occurred_at=used.occurred_at,
                region=settings.region,
                revocation_id=new_event_id(),
                scope=RevocationScope.SESSION,
                subject=used.session_id,
                reason=f"theft-{verdict.rule}",
                requested_by=AGENT,
                covers_until=used.occurred_at + covers_ms,
            )
            notice = ReissueNotice(
                event_id=new_event_id(),
                occurred_at=used.occurred_at,
                region=settings.region,
                viewer_ref=used.viewer_ref,
                session_id=used.session_id,
                token_id=verdict.token_id,
                rule=verdict.rule,
                evidence=verdict.evidence,
                revocation_id=revocation.revocation_id,
            )
            # The revocation first: a notice must never precede the enforcement it announces.
            await (
                await revocations.send(
                    key=revocation_key(revocation), value=codec.encode(revocation)
                )
            )
            await (await notices.send(key=used.viewer_ref.encode(), value=codec.encode(notice)))
