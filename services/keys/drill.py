"""The key side of the key-leak drill: emergency rotation timed until every region switched."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from services.keys.errors import KeyHierarchyError
from services.keys.keystore import KeyStore
from services.keys.rotation import RotationOutcome, Rotator
from services.keys.timeline import EpochInfo
from streams.meta import now_ms


@dataclass(frozen=True, slots=True)
class SwitchReport:
    """An emergency rotation and how long each region took to serve only its keys."""

    outcome: RotationOutcome
    confirmed_s: float  # until Kafka acknowledged the new epoch
    regions_s: dict[str, float]  # until that region's KeyStore took the new epoch in

    @property
    def epoch(self) -> EpochInfo:
        return self.outcome.created[0]

    @property
    def slowest_s(self) -> float:
        return max(self.regions_s.values(), default=self.confirmed_s)


def emergency_switch(
    rotator: Rotator, regions: Sequence[KeyStore], *, timeout: float = 30.0
) -> SwitchReport:
    """Rotate in an emergency, then wait until every region's current key is the new epoch's.

    `regions` are running KeyStores (started, caught up), one per region. Times are
    from just before the rotation; a region that does not switch within timeout raises
    `switch-timeout`.
    """
    began = time.monotonic()
    outcome = rotator.rotate(emergency=True)
    confirmed = time.monotonic() - began
    epoch_id = outcome.created[0].epoch_id
    regions_s: dict[str, float] = {}
    for store in regions:
        left = max(0.0, began + timeout - time.monotonic())
        if not store.wait_for_epoch(epoch_id, left):
            raise KeyHierarchyError(
                f"{store.region} did not read epoch {epoch_id} within {timeout:g} s",
                reason="switch-timeout",
            )
        serving = store.epoch_in_force(now_ms()).epoch_id
        if serving != epoch_id:
            raise KeyHierarchyError(
                f"{store.region} read {epoch_id} but serves {serving}", reason="switch-failed"
            )
        seen = store.seen_at(epoch_id)
        regions_s[store.region] = (seen if seen is not None else time.monotonic()) - began
    return SwitchReport(outcome, confirmed, regions_s)
