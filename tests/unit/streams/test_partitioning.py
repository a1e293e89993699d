"""Our murmur2 partitioner puts keys where aiokafka (Faust) and the Java client do."""

from __future__ import annotations

from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given
from hypothesis import strategies as st

from streams.partitioning import murmur2, partition_of


@given(st.binary(max_size=200))
def test_murmur2_is_kafkas(key: bytes) -> None:
    assert murmur2(key) == aiokafka_murmur2(key)


def test_partitions_match_the_java_clients_known_answers() -> None:
    # Kafka's own partitioner tests: these keys over 1,000 partitions.
    keys = [b"", b"a", b"ab", b"abc", b"123456789", b"\x00 "]
    assert [partition_of(k, 1000) for k in keys] == [681, 524, 434, 107, 566, 742]
