"""A license service over in-memory keys, tokens, revocations, geo and Kafka, with a clock."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi.testclient import TestClient

from services.access.geo import GeoFacts, GeoResolver
from services.access.policy import PolicyBook
from services.access.revocation import TokenIdentity
from services.auth.signing_keys import b64url
from services.auth.tokens import DeviceBinding, Entitlements, GeoBinding, PlaybackClaims, sign_token
from services.keys.epochs import build_key_epoch, new_master_key
from services.keys.keystore import EpochKeys
from services.keys.kms import InMemoryKeks
from services.license.events import InMemoryLicenseEvents
from services.license.rest import create_license_app
from services.license.service import LicenseService
from services.license.tokens import PlaybackTokens

ISSUER, AUDIENCE = "liveward-auth", "liveward-playback"
PERIOD_S = 60
PERIOD_MS = PERIOD_S * 1000
# A period boundary, so tests can place the clock anywhere in period P0 = T0 / PERIOD_MS.
T0_MS = 1_800_000_000_000 - 1_800_000_000_000 % PERIOD_MS
P0 = T0_MS // PERIOD_MS
HOME_IP, HOME_IP_2, AWAY_IP, TOR_IP = (
    "89.160.20.112",
    "89.160.20.140",
    "216.160.83.56",
    "81.2.69.142",
)
PROXY = ("127.0.0.1", 50000)  # the tests' client is a trusted proxy that names the viewer

POLICY = """
unknown_content = "deny"

[default]
device_classes = ["web", "tv"]

[content."sports/*"]
ip_binding = "asn"

[content."news/*"]
allowed_countries = ["US"]
ip_binding = "none"
"""


def _facts(ip: str, network: str, country: str | None, asn: int | None, *anon: str) -> GeoFacts:
    return GeoFacts(ip, network, country, None, asn, frozenset(anon), None)


PLACES = {
    HOME_IP: _facts(HOME_IP, "89.160.20.0/24", "SE", 29518),
    HOME_IP_2: _facts(HOME_IP_2, "89.160.20.0/24", "SE", 29518),
    AWAY_IP: _facts(AWAY_IP, "216.160.83.0/24", "US", 209),
    TOR_IP: _facts(TOR_IP, "81.2.69.0/24", "GB", None, "tor", "anonymous"),
}


class Places:
    """Four known addresses; others as a resolver without databases sees them."""

    def __init__(self) -> None:
        self._nowhere = GeoResolver(None, None, None)

    def resolve(self, ip: str) -> GeoFacts:
        facts = self._nowhere.resolve(ip)
        return PLACES.get(facts.ip, facts)


@dataclass
class Clock:
    """Seconds since the epoch, settable (the service's clock)."""

    now: float = T0_MS / 1000 + 10

    def __call__(self) -> float:
        return self.now

    def ms(self) -> int:
        return round(self.now * 1000)


@dataclass
class Revocations:
    """A revocation list: token ids and session ids named here are revoked."""

    tokens: set[str] = field(default_factory=set)
    sessions: set[str] = field(default_factory=set)

    def check(self, token: TokenIdentity) -> str | None:
        if token.token_id in self.tokens:
            return "token-revoked"
        if token.session_id in self.sessions:
            return "session-revoked"
        return None

    def ready(self) -> bool:
        return True


@dataclass
class StaticJwks:
    """A JWKS source that answers what it holds and counts fetches."""

    document: dict[str, Any]
    fetches: int = 0

    def fetch(self) -> Mapping[str, Any]:
        self.fetches += 1
        return self.document


def jwk(kid: str, signer: Ed25519PrivateKey) -> dict[str, str]:
    raw = signer.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw), "kid": kid}


@dataclass
class LicenseWorld:
    """Everything a test needs to ask for licenses and check what happened."""

    clock: Clock
    keys: EpochKeys
    events: InMemoryLicenseEvents
    revocations: Revocations
    jwks: StaticJwks
    tokens: PlaybackTokens
    service: LicenseService
    signer: Ed25519PrivateKey
    kid: str = "kid-1"

    def claims(self, **changes: Any) -> PlaybackClaims:
        now = self.clock.now
        claims = PlaybackClaims(
            issuer=ISSUER,
            audience=AUDIENCE,
            viewer_id="viewer-1",
            issued_at=now,
            not_before=int(now),
            expires_at=int(now) + 300,
            token_id=str(uuid.uuid4()),
            session_id=str(uuid.uuid4()),
            content_id="sports/final",
            entitlements=Entitlements(packages=(), max_streams=2, home_country="SE"),
            geo=GeoBinding(country="SE", network="89.160.20.0/24", asn=29518),
            device=DeviceBinding(device_id="device-1", device_class="web"),
            viewer_ref="v" * 64,
            device_ref="d" * 64,
            session_version=0,
        )
        return replace(claims, **changes)

    def token(self, **changes: Any) -> str:
        return sign_token(self.claims(**changes), self.kid, self.signer)

    def key(self, period: int, content_id: str = "sports/final") -> Any:
        return self.keys.content_key(content_id, period)


@pytest.fixture
def world() -> LicenseWorld:
    return make_world()


def make_world() -> LicenseWorld:
    """A service over in-memory parts, 10 s into period P0 (also for profiling by hand)."""
    clock = Clock()
    keks = InMemoryKeks("eu-west")
    keys = EpochKeys(keks, clock=clock.ms)
    keys.add(
        build_key_epoch(
            master_key=new_master_key(),
            epoch_id="epoch-1",
            started_at=T0_MS - 10 * PERIOD_MS,
            period_seconds=PERIOD_S,
            emergency=False,
            keks={"eu-west": keks},
            emitted_by="eu-west",
            event_id="event-epoch-1",
            occurred_at=T0_MS - 20 * PERIOD_MS,
        )
    )
    signer = Ed25519PrivateKey.generate()
    jwks = StaticJwks({"keys": [jwk("kid-1", signer)]})
    tokens = PlaybackTokens(jwks, issuer=ISSUER, audience=AUDIENCE, monotonic=clock)
    tokens.refresh()
    events = InMemoryLicenseEvents()
    revocations = Revocations()
    service = LicenseService(
        region="eu-west",
        tokens=tokens,
        revocations=revocations,
        keys=keys,
        geo=Places(),
        policies=PolicyBook.parse(POLICY),
        events=events,
        ready=tokens.ready,
        clock=clock,
    )
    return LicenseWorld(clock, keys, events, revocations, jwks, tokens, service, signer)


@pytest.fixture
def client(world: LicenseWorld) -> Iterator[TestClient]:
    app = create_license_app(world.service, trusted_proxies=("127.0.0.1/32",))
    with TestClient(app, client=PROXY) as http:
        yield http
