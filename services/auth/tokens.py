"""Playback tokens: the claims, signing (EdDSA JWS), optional JWE wrapping, and verification.

Verification needs public keys only (a JWKS), so the license service and any other
edge verify exactly as the auth service does. Every refusal is a `TokenRejected` whose
reason is one of `REJECTION_REASONS`; the checks run cheapest and least revealing first
(size, shape, algorithm, kid), then the signature, and only then the claims, so an
unsigned or forged token never learns whether its claims would have passed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import jwt
import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

from services.auth.errors import AuthError, TokenRejected
from services.auth.signing_keys import b64url_decode, public_keys

ALGORITHM = "EdDSA"
JWE_ALGORITHM = "dir"
JWE_ENCRYPTION = "A256GCM"
# Clocks of issuer and verifiers may disagree by this much (seconds).
CLOCK_SKEW_S = 30
# Ours are ~1 kB signed and ~1.4 kB encrypted; anything much larger is not ours.
MAX_TOKEN_BYTES = 4096
ED25519_SIGNATURE_BYTES = 64

REJECTION_REASONS = frozenset(
    {
        "token-missing",
        "token-malformed",
        "token-too-large",
        "alg-not-allowed",
        "kid-unknown",
        "kid-retired",
        "signature-invalid",
        "token-expired",
        "token-not-yet-valid",
        "audience-invalid",
        "issuer-invalid",
        "jwe-invalid",
    }
)

T = TypeVar("T")

_COMPACT = re.compile(r"^[A-Za-z0-9_\-.]+$")


@dataclass(frozen=True, slots=True)
class Entitlements:
    """What the token's holder may watch beyond its own content: the viewer's packages."""

    packages: tuple[str, ...]
    max_streams: int
    home_country: str | None


@dataclass(frozen=True, slots=True)
class GeoBinding:
    """Where the token was issued: country, the client's /24 (IPv4) or /48 (IPv6), ASN."""

    country: str | None
    network: str
    asn: int | None


@dataclass(frozen=True, slots=True)
class DeviceBinding:
    device_id: str
    device_class: str


@dataclass(frozen=True, slots=True)
class PlaybackClaims:
    """The claims of a playback token; times are epoch seconds.

    `issued_at` keeps milliseconds (a JWT NumericDate may be fractional) because a
    device or viewer revocation kills the tokens issued before it, to the millisecond.
    """

    issuer: str
    audience: str
    viewer_id: str
    issued_at: float
    not_before: int
    expires_at: int
    token_id: str
    session_id: str
    content_id: str
    entitlements: Entitlements
    geo: GeoBinding
    device: DeviceBinding
    viewer_ref: str
    device_ref: str
    session_version: int

    @property
    def issued_at_ms(self) -> int:
        return round(self.issued_at * 1000)

    def to_payload(self) -> dict[str, Any]:
        return {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": self.viewer_id,
            "iat": self.issued_at,
            "nbf": self.not_before,
            "exp": self.expires_at,
            "jti": self.token_id,
            "sid": self.session_id,
            "cid": self.content_id,
            "ent": {
                "packages": list(self.entitlements.packages),
                "max_streams": self.entitlements.max_streams,
                "home_country": self.entitlements.home_country,
            },
            "geo": {"country": self.geo.country, "network": self.geo.network, "asn": self.geo.asn},
            "dev": {"id": self.device.device_id, "class": self.device.device_class},
            "vref": self.viewer_ref,
            "dref": self.device_ref,
            "sv": self.session_version,
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> PlaybackClaims:
        """Claims from a verified payload; a missing or ill-typed claim is `token-malformed`."""
        try:
            ent, geo, dev = payload["ent"], payload["geo"], payload["dev"]
            claims = cls(
                issuer=_typed(payload["iss"], str),
                audience=_typed(payload["aud"], str),
                viewer_id=_typed(payload["sub"], str),
                issued_at=float(_number(payload["iat"])),
                not_before=int(_number(payload["nbf"])),
                expires_at=int(_number(payload["exp"])),
                token_id=_typed(payload["jti"], str),
                session_id=_typed(payload["sid"], str),
                content_id=_typed(payload["cid"], str),
                entitlements=Entitlements(
                    packages=tuple(_typed(p, str) for p in _typed(ent["packages"], list)),
                    max_streams=_typed(ent["max_streams"], int),
                    home_country=_optional(ent["home_country"], str),
                ),
                geo=GeoBinding(
                    country=_optional(geo["country"], str),
                    network=_typed(geo["network"], str),
                    asn=_optional(geo["asn"], int),
                ),
                device=DeviceBinding(
                    device_id=_typed(dev["id"], str), device_class=_typed(dev["class"], str)
                ),
                viewer_ref=_typed(payload["vref"], str),
                device_ref=_typed(payload["dref"], str),
                session_version=_typed(payload["sv"], int),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise TokenRejected("token-malformed", f"claims do not parse: {exc}") from exc
        return claims


def _typed(value: object, kind: type[T]) -> T:
    # bool is an int in Python, but never a valid count or version here.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"{value!r} is not {kind.__name__}")
    return value


def _optional(value: object, kind: type[T]) -> T | None:
    return None if value is None else _typed(value, kind)


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TypeError(f"{value!r} is not a number")
    return float(value)


def check_claims(
    claims: PlaybackClaims, *, now: float, issuer: str, audience: str, leeway_s: int
) -> None:
    """Raise TokenRejected unless claims are from issuer, for audience, and valid at now."""
    if claims.issuer != issuer:
        raise TokenRejected("issuer-invalid", f"issued by {claims.issuer!r}")
    if claims.audience != audience:
        raise TokenRejected("audience-invalid", f"meant for {claims.audience!r}")
    if now >= claims.expires_at + leeway_s:
        raise TokenRejected("token-expired", f"expired at {claims.expires_at}")
    if now + leeway_s < max(claims.not_before, claims.issued_at):
        raise TokenRejected("token-not-yet-valid", f"valid from {claims.not_before}")


def sign_token(claims: PlaybackClaims, kid: str, signer: Ed25519PrivateKey) -> str:
    """The claims as a compact JWS (EdDSA) with `kid` in the header."""
    return jwt.encode(
        claims.to_payload(), signer, algorithm=ALGORITHM, headers={"kid": kid, "typ": "JWT"}
    )


def encryption_key(text: str) -> bytes:
    """The JWE content key from its base64url text; it must be 32 bytes (A256GCM)."""
    try:
        raw = b64url_decode(text.strip())
    except ValueError as exc:
        raise AuthError("the token encryption key is not base64url") from exc
    if len(raw) != 32:
        raise AuthError(f"the token encryption key must be 32 bytes, not {len(raw)}")
    return raw


def encrypt_token(jws: str, key: bytes) -> str:
    """Wrap a signed token in a compact JWE (alg dir, enc A256GCM, cty JWT)."""
    header = {"alg": JWE_ALGORITHM, "enc": JWE_ENCRYPTION, "cty": "JWT"}
    return jwe.encrypt_compact(header, jws.encode(), OctKey.import_key(key))


def decrypt_token(token: str, key: bytes) -> str:
    """The signed token inside a compact JWE; any failure is `jwe-invalid`."""
    try:
        result = jwe.decrypt_compact(
            token, OctKey.import_key(key), algorithms=[JWE_ALGORITHM, JWE_ENCRYPTION]
        )
        if result.plaintext is None:
            raise TokenRejected("jwe-invalid", "the JWE carries no token")
        return result.plaintext.decode()
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise TokenRejected("jwe-invalid", f"cannot decrypt: {exc}") from exc


class TokenVerifier:
    """Verifies playback tokens against a fixed set of public keys.

    `retired_kids` lets a verifier answer `kid-retired` rather than `kid-unknown`;
    `encryption_key` is needed only to read encrypted (JWE) tokens. Plain signed tokens
    are accepted even when encryption is on: the signature authenticates, encryption
    only hides the claims from whoever holds the token.
    """

    def __init__(
        self,
        keys: Mapping[str, bytes],
        *,
        issuer: str,
        audience: str,
        retired_kids: Collection[str] = frozenset(),
        encryption_key: bytes | None = None,
        leeway_s: int = CLOCK_SKEW_S,
        max_token_bytes: int = MAX_TOKEN_BYTES,
    ) -> None:
        self._keys = {kid: Ed25519PublicKey.from_public_bytes(raw) for kid, raw in keys.items()}
        self._retired = frozenset(retired_kids)
        self._issuer = issuer
        self._audience = audience
        self._encryption_key = encryption_key
        self._leeway_s = leeway_s
        self._max_token_bytes = max_token_bytes

    @classmethod
    def from_jwks(
        cls, jwks: Mapping[str, Any], *, issuer: str, audience: str, **options: Any
    ) -> TokenVerifier:
        return cls(public_keys(jwks), issuer=issuer, audience=audience, **options)

    def verify(self, token: str | None, *, now: float) -> PlaybackClaims:
        """The token's claims, or TokenRejected with the first reason it fails."""
        if not token:
            raise TokenRejected("token-missing", "no token presented")
        if len(token) > self._max_token_bytes:
            raise TokenRejected("token-too-large", f"tokens are limited to {self._max_token_bytes}")
        if not _COMPACT.match(token):
            raise TokenRejected("token-malformed", "not a compact JWS or JWE")
        parts = token.count(".") + 1
        if parts == 5:
            if self._encryption_key is None:
                raise TokenRejected("jwe-invalid", "encrypted tokens are not accepted here")
            token = decrypt_token(token, self._encryption_key)
            if token.count(".") != 2 or not _COMPACT.match(token):
                raise TokenRejected("jwe-invalid", "the JWE does not hold a signed token")
        elif parts != 3:
            raise TokenRejected("token-malformed", f"{parts} segments")
        payload = self._verified_payload(token)
        claims = PlaybackClaims.from_payload(payload)
        check_claims(
            claims, now=now, issuer=self._issuer, audience=self._audience, leeway_s=self._leeway_s
        )
        return claims

    def _verified_payload(self, token: str) -> dict[str, Any]:
        """The payload of a compact JWS whose Ed25519 signature verifies under its kid.

        Done here rather than by PyJWT's decode, which parsed the header again and cost a
        cold licence ~150 µs over the signature check itself; what it checked is checked
        here too: the header is a JSON object naming EdDSA and a known kid and no `crit`
        extension, the signature is 64 bytes over `header.payload` and verifies, and the
        payload is a JSON object.
        """
        header_segment, payload_segment, signature_segment = token.split(".")
        header = _json_object(header_segment, "header")
        alg = header.get("alg")
        if alg != ALGORITHM:
            raise TokenRejected("alg-not-allowed", f"alg {alg!r}; only {ALGORITHM}")
        if "crit" in header:  # RFC 7515 4.1.11: no extension is understood here
            raise TokenRejected("token-malformed", "the header names critical extensions")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise TokenRejected("kid-unknown", "no kid in the header")
        key = self._keys.get(kid)
        if key is None:
            if kid in self._retired:
                raise TokenRejected("kid-retired", f"key {kid} is retired")
            raise TokenRejected("kid-unknown", f"no key {kid}")
        # Anything but 64 base64url-encoded bytes is a tampered signature.
        try:
            signature = b64url_decode(signature_segment)
        except ValueError:
            signature = b""
        if len(signature) != ED25519_SIGNATURE_BYTES:
            raise TokenRejected("signature-invalid", "the signature is not an Ed25519 signature")
        try:
            key.verify(signature, f"{header_segment}.{payload_segment}".encode())
        except InvalidSignature as exc:
            raise TokenRejected("signature-invalid", "the signature does not verify") from exc
        # Time and audience checks are ours (check_claims): the clock is an argument.
        return _json_object(payload_segment, "payload")


def _json_object(segment: str, part: str) -> dict[str, Any]:
    """A token segment's base64url JSON object; token-malformed if it is anything else."""
    try:
        value = orjson.loads(b64url_decode(segment))
    except ValueError as exc:
        raise TokenRejected("token-malformed", f"the {part} is not base64url JSON") from exc
    if not isinstance(value, dict):
        raise TokenRejected("token-malformed", f"the {part} is not a JSON object")
    return value
