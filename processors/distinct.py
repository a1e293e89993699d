"""Mergeable distinct counts: an exact set of 64-bit hashes that turns into a HyperLogLog when big.

The k-anonymity floor needs exact counts where it decides (a handful of viewers), while a
window of a busy region may hold hundreds of thousands of pseudonyms that would not fit a
Kafka record or a table changelog. So a `DistinctSet` stays exact up to `EXACT_LIMIT`
members (above any sensible k) and only then becomes a HyperLogLog sketch (precision 10:
1,024 one-byte registers, about 3.3 % standard error). Both forms stay around a kilobyte,
so a region's open windows fit one changelog record. Either form merges with the other,
so partial aggregates from different partitions combine by union.
"""

from __future__ import annotations

import base64
import hashlib
import math
from array import array
from collections.abc import Iterable
from typing import Any

EXACT_LIMIT = 128
PRECISION = 10
REGISTERS = 1 << PRECISION
_MASK64 = (1 << 64) - 1
_RANK_BITS = 64 - PRECISION
_ALPHA = 0.7213 / (1 + 1.079 / REGISTERS)


def hash64(member: str) -> int:
    """A stable 64-bit hash of member (BLAKE2b, so it is the same in every process)."""
    return int.from_bytes(hashlib.blake2b(member.encode(), digest_size=8).digest(), "little")


class DistinctSet:
    """Distinct members, counted exactly up to EXACT_LIMIT and estimated (HLL) beyond."""

    __slots__ = ("_exact", "_registers")

    def __init__(self) -> None:
        self._exact: set[int] | None = set()
        self._registers: bytearray | None = None

    @classmethod
    def of(cls, members: Iterable[str]) -> DistinctSet:
        distinct = cls()
        for member in members:
            distinct.add(member)
        return distinct

    @property
    def exact(self) -> bool:
        """True while the count is exact (the set has not outgrown EXACT_LIMIT)."""
        return self._exact is not None

    def add(self, member: str) -> None:
        self.add_hash(hash64(member))

    def add_hash(self, value: int) -> None:
        if self._exact is not None:
            self._exact.add(value)
            if len(self._exact) > EXACT_LIMIT:
                self._to_sketch()
            return
        assert self._registers is not None
        _register(self._registers, value)

    def update(self, other: DistinctSet) -> None:
        """Union other into this set."""
        if other._exact is not None:
            for value in other._exact:
                self.add_hash(value)
            return
        assert other._registers is not None
        if self._exact is not None:
            self._to_sketch()
        assert self._registers is not None
        self._registers[:] = bytes(map(max, self._registers, other._registers))

    def copy(self) -> DistinctSet:
        clone = DistinctSet()
        clone._exact = None if self._exact is None else set(self._exact)
        clone._registers = None if self._registers is None else bytearray(self._registers)
        return clone

    def count(self) -> int:
        """How many distinct members: exact, or the HyperLogLog estimate once sketched."""
        if self._exact is not None:
            return len(self._exact)
        assert self._registers is not None
        return _estimate(self._registers)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able form: packed hashes (`x`) or the registers (`h`), base64."""
        if self._exact is not None:
            packed = array("Q", sorted(self._exact)).tobytes()
            return {"x": base64.b64encode(packed).decode()}
        assert self._registers is not None
        return {"h": base64.b64encode(bytes(self._registers)).decode()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DistinctSet:
        distinct = cls()
        if "h" in data:
            registers = base64.b64decode(data["h"])
            if len(registers) != REGISTERS:
                raise ValueError(f"a sketch has {REGISTERS} registers, got {len(registers)}")
            distinct._exact, distinct._registers = None, bytearray(registers)
            return distinct
        hashes = array("Q")
        hashes.frombytes(base64.b64decode(data["x"]))
        for value in hashes:
            distinct.add_hash(value)
        return distinct

    def _to_sketch(self) -> None:
        registers = bytearray(REGISTERS)
        for value in self._exact or ():
            _register(registers, value)
        self._exact, self._registers = None, registers

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DistinctSet):
            return NotImplemented
        return self._exact == other._exact and self._registers == other._registers

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        kind = "exact" if self.exact else "estimated"
        return f"DistinctSet({self.count()} {kind})"


def _register(registers: bytearray, value: int) -> None:
    index = value >> _RANK_BITS
    rest = (value << PRECISION) & _MASK64
    # Leading zeros of the remaining bits, plus one; capped when they are all zero.
    rank = min(64 - rest.bit_length() + 1, _RANK_BITS + 1)
    registers[index] = max(registers[index], rank)


def _estimate(registers: bytearray) -> int:
    raw = _ALPHA * REGISTERS * REGISTERS / sum(2.0**-r for r in registers)
    zeros = registers.count(0)
    if raw <= 2.5 * REGISTERS and zeros:
        # Small-range correction (linear counting) is far more accurate at low counts.
        return round(REGISTERS * math.log(REGISTERS / zeros))
    return round(raw)
