"""The revocation-list agent: folds revocation requests into the compacted revocation list."""

from __future__ import annotations

from typing import Any

import faust

from liveward.settings import Settings
from processors.deadletters import send_dead_letter
from processors.revocation_list import entry_key, expired_keys, fold_request
from processors.tables import changelog_known
from processors.topics import catalog_topic
from streams.codec import default_codec
from streams.deadletter import DEAD_LETTER_TOPIC
from streams.errors import DecodeError
from streams.events import RevocationListEntry, RevocationRequested
from streams.meta import new_event_id, now_ms

SWEEP_INTERVAL_S = 5.0


def register(app: faust.App, settings: Settings) -> None:
    codec = default_codec()
    requests = catalog_topic(app, "auth.revocations")
    revocation_list = catalog_topic(app, "auth.revocation-list")
    dead_letters = catalog_topic(app, DEAD_LETTER_TOPIC)
    # Keyed like the input topic (same murmur2 partitioner), so the timer may delete too.
    table = app.Table(
        "revocation-list",
        default=None,
        partitions=requests.partitions,
        key_type=bytes,
        value_type=bytes,
        use_partitioner=True,
    )

    @app.agent(requests, name="fold-revocations")
    async def fold_revocations(stream: Any) -> None:
        async for event in stream.events():
            try:
                request = codec.decode_as(event.value, RevocationRequested)
            except DecodeError as exc:
                await send_dead_letter(
                    dead_letters,
                    codec,
                    event,
                    reason=exc.reason,
                    detail=str(exc),
                    consumer="fold-revocations",
                    region=settings.region,
                )
                continue
            key = entry_key(request.scope, request.subject).encode()
            stored = table.get(key)
            current = codec.decode_as(stored, RevocationListEntry) if stored else None
            entry = fold_request(current, request, now_ms=now_ms(), event_id=new_event_id())
            if entry is None:
                continue
            encoded = codec.encode(entry)
            await changelog_known(app, table)
            table[key] = encoded
            await (await revocation_list.send(key=key, value=encoded))

    @app.timer(interval=SWEEP_INTERVAL_S, name="sweep-revocations")
    async def sweep_expired() -> None:
        entries = [(k.decode(), codec.decode_as(v, RevocationListEntry)) for k, v in table.items()]
        for key in expired_keys(entries, now_ms=now_ms()):
            await changelog_known(app, table)
            del table[key.encode()]
            # A tombstone: compaction drops the entry, keeping the list bounded.
            await (await revocation_list.send(key=key.encode(), value=None))
