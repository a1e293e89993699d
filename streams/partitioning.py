"""Which partition a key lands in: Kafka's default partitioner (murmur2), in Python.

confluent-kafka (with `partitioner=murmur2_random`), the Java client and aiokafka all put
a keyed record on `(murmur2(key) & 0x7fffffff) % partitions`. Code that must know that
partition before producing (the telemetry bridge groups a request's samples by it)
computes it here; a unit test checks it against aiokafka's reference implementation.
"""

from __future__ import annotations

import struct

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(key: bytes) -> int:
    """Kafka's 32-bit murmur2 hash of key (`org.apache.kafka.common.utils.Utils.murmur2`)."""
    length = len(key)
    h = _SEED ^ length
    whole = length & ~3
    for (word,) in struct.iter_unpack("<I", key[:whole]):
        k = (word * _M) & _MASK
        k ^= k >> 24
        h = ((h * _M) & _MASK) ^ ((k * _M) & _MASK)
    rest = length & 3
    if rest:
        if rest == 3:
            h ^= key[whole + 2] << 16
        if rest >= 2:
            h ^= key[whole + 1] << 8
        h = ((h ^ key[whole]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for key among `partitions`."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
