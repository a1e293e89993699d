"""Faust tables keyed with `use_partitioner`: wait until the producer knows their changelog."""

from __future__ import annotations

from typing import Any

_known: set[str] = set()


async def changelog_known(app: Any, table: Any) -> None:
    """Return once the producer has metadata for table's changelog topic.

    A table keyed with use_partitioner hashes its key against the producer's cached
    metadata of the changelog topic; on a fresh broker that cache may not know the topic
    yet and the write fails (TypeError deep in the partitioner), crashing the worker.
    Faust offers no public wait for it; aiokafka does.
    """
    name = table.changelog_topic.get_topic_name()
    if name in _known:
        return
    await app.producer._ensure_producer().partitions_for(name)
    _known.add(name)
