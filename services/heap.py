"""Keeping the cyclic garbage collector out of request latency.

A full (generation 2) collection walks every tracked object; in a service holding views,
caches and a key store it takes tens of milliseconds, and every request in flight waits
for it (measured on the license service: p99 at 1k req/s set by those pauses). Services
call `settle_heap` once they are set up: the start-up heap is frozen (never scanned
again) and young collections run less often, so the remaining collections are short.
"""

from __future__ import annotations

import gc

# Allocations minus deallocations before a young collection (CPython's default is 700;
# request handling allocates a few hundred container objects, so the default collects
# several times per request burst).
YOUNG_THRESHOLD = 50_000


def settle_heap() -> None:
    """Collect once, freeze what survived (start-up state), and collect young objects less
    often."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
