"""Token theft rules: uses of one session that cannot all be the rightful viewer. Pure."""

from __future__ import annotations

from dataclasses import dataclass, replace

from streams.events import TokenUsed

# An unknown country cannot contradict anything.
UNKNOWN_COUNTRIES = frozenset({"", "--"})


@dataclass(frozen=True, slots=True)
class TheftRules:
    """How much disagreement a session's uses may show inside `window_ms`."""

    window_ms: int = 300_000
    # Mobile hand-over (Wi-Fi to cellular) legitimately shows two networks.
    max_networks: int = 2


@dataclass(frozen=True, slots=True)
class Use:
    """One use of a session, as much as the rules need of it."""

    at_ms: int
    token_id: str
    network: str
    asn: int
    country: str
    device_ref: str

    @classmethod
    def of(cls, event: TokenUsed) -> Use:
        return cls(
            at_ms=event.occurred_at,
            token_id=event.token_id,
            network=event.ip_prefix,
            asn=event.asn,
            country=event.country,
            device_ref=event.device_ref,
        )

    def describe(self) -> str:
        return f"{self.network} AS{self.asn} {self.country} device {self.device_ref[:12]}"


@dataclass(frozen=True, slots=True)
class SessionUses:
    """What the detector remembers of one session: recent uses, and whether it fired."""

    uses: tuple[Use, ...] = ()
    flagged: bool = False


@dataclass(frozen=True, slots=True)
class TheftVerdict:
    """The session is stolen: which rule, and the uses that disagree."""

    rule: str
    evidence: tuple[str, ...]
    token_id: str


def observe_use(
    state: SessionUses, use: Use, rules: TheftRules
) -> tuple[SessionUses, TheftVerdict | None]:
    """Fold one use into the session's state; a verdict the first time a rule fires.

    Rules, in order: the same session from another device (tokens are device-bound);
    from two countries inside the window (impossible travel); from more networks at once
    than `max_networks`. Uses older than the window (by event time) are forgotten.
    Once flagged, a session yields no further verdicts: it is already revoked.
    """
    horizon = use.at_ms - rules.window_ms
    recent = (*(u for u in state.uses if u.at_ms > horizon), use)
    kept = replace(state, uses=recent[-32:])
    if state.flagged:
        return kept, None
    verdict = _judge(recent, use, rules)
    if verdict is None:
        return kept, None
    return replace(kept, flagged=True), verdict


def _judge(recent: tuple[Use, ...], use: Use, rules: TheftRules) -> TheftVerdict | None:
    other_device = next((u for u in recent if u.device_ref != use.device_ref), None)
    if other_device is not None:
        return TheftVerdict(
            "device-mismatch", (other_device.describe(), use.describe()), use.token_id
        )
    known = use.country not in UNKNOWN_COUNTRIES
    other_country = next(
        (
            u
            for u in recent
            if known and u.country not in UNKNOWN_COUNTRIES and u.country != use.country
        ),
        None,
    )
    if other_country is not None:
        return TheftVerdict(
            "impossible-travel", (other_country.describe(), use.describe()), use.token_id
        )
    networks = {u.network for u in recent}
    if len(networks) > rules.max_networks:
        evidence = tuple(sorted({u.describe() for u in recent}))
        return TheftVerdict("too-many-networks", evidence, use.token_id)
    return None
