"""Token speed: issue/verify next to raw Ed25519 in the same run; HTTP issue latency at a rate."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from bench.load import open_loop
from services.auth.tokens import (
    DeviceBinding,
    Entitlements,
    GeoBinding,
    PlaybackClaims,
    TokenVerifier,
    sign_token,
)

ISSUER, AUDIENCE = "liveward-auth", "liveward-playback"
VIEWER_IP = "2.125.160.218"  # England in the demo geo databases


@dataclass(frozen=True, slots=True)
class CryptoFigures:
    """Operations per second, ours and the raw primitive, measured back to back."""

    issue_per_s: float
    raw_sign_per_s: float
    verify_per_s: float
    raw_verify_per_s: float
    token_bytes: int


@dataclass(frozen=True, slots=True)
class HttpFigures:
    """Latency of POST /v1/tokens at a fixed offered rate (from each request's scheduled
    send time, so a stall counts against every request it delayed)."""

    rate_per_s: int
    requests: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: int


def sample_claims(now: float) -> PlaybackClaims:
    return PlaybackClaims(
        issuer=ISSUER,
        audience=AUDIENCE,
        viewer_id="bench-viewer",
        issued_at=now,
        not_before=int(now),
        expires_at=int(now) + 300,
        token_id=uuid.uuid4().hex,
        session_id=uuid.uuid4().hex,
        content_id="bench-live",
        entitlements=Entitlements(packages=("sports",), max_streams=2, home_country="GB"),
        geo=GeoBinding(country="GB", network="2.125.160.0/24", asn=64500),
        device=DeviceBinding(device_id="bench-device", device_class="web"),
        viewer_ref="ab" * 32,
        device_ref="cd" * 32,
        session_version=1,
    )


def _rate(count: int, action: object) -> float:
    started = time.perf_counter()
    for _ in range(count):
        action()  # type: ignore[operator]
    return count / (time.perf_counter() - started)


def measure_crypto(count: int) -> CryptoFigures:
    """Sign/verify `count` tokens, and the raw Ed25519 operation on the same bytes."""
    signer = Ed25519PrivateKey.generate()
    public = signer.public_key()
    raw_public = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    now = time.time()
    claims = sample_claims(now)
    token = sign_token(claims, "bench-kid", signer)
    signing_input = token.rsplit(".", 1)[0].encode()
    signature = signer.sign(signing_input)
    verifier = TokenVerifier({"bench-kid": raw_public}, issuer=ISSUER, audience=AUDIENCE)
    return CryptoFigures(
        issue_per_s=_rate(count, lambda: sign_token(sample_claims(now), "bench-kid", signer)),
        raw_sign_per_s=_rate(count, lambda: signer.sign(signing_input)),
        verify_per_s=_rate(count, lambda: verifier.verify(token, now=now)),
        raw_verify_per_s=_rate(count, lambda: public.verify(signature, signing_input)),
        token_bytes=len(token),
    )


def measure_http_issue(
    url: str, *, admin_key: str, app_key: str, rate_per_s: int, seconds: float
) -> HttpFigures:
    """Offer POST /v1/tokens at rate_per_s for seconds against a running auth service.

    Open loop: each request leaves at its scheduled time whether or not earlier ones
    have been answered, as independent players would send them.
    """
    return asyncio.run(_offer(url, admin_key, app_key, rate_per_s, seconds))


async def _offer(
    url: str, admin_key: str, app_key: str, rate_per_s: int, seconds: float
) -> HttpFigures:
    viewer_id = f"bench-{uuid.uuid4().hex[:8]}"
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=url, timeout=10.0, limits=limits) as http:
        answer = await http.put(
            f"/v1/subscribers/{viewer_id}",
            headers={"Authorization": f"Bearer {admin_key}"},
            json={"content_ids": ["bench-live"], "device_classes": ["web"],
                  "max_concurrent_streams": 4, "home_country": "GB"},
        )  # fmt: skip
        answer.raise_for_status()
        body = {"viewer_id": viewer_id, "content_id": "bench-live", "device_id": "bench-1",
                "device_class": "web", "client_ip": VIEWER_IP}  # fmt: skip
        headers = {"Authorization": f"Bearer {app_key}"}
        # Warm up: connections, the producer's id, the subscriber reaching the view.
        deadline = time.monotonic() + 30
        while (await http.post("/v1/tokens", json=body, headers=headers)).status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("the auth service never issued a token")
            await asyncio.sleep(0.1)

        async def one(_: int) -> str | None:
            answer = await http.post("/v1/tokens", json=body, headers=headers)
            return None if answer.status_code == 200 else str(answer.status_code)

        figures = await open_loop(one, rate_per_s=rate_per_s, seconds=seconds)
    return HttpFigures(
        rate_per_s=rate_per_s,
        requests=figures.requests,
        p50_ms=figures.p50_ms,
        p99_ms=figures.p99_ms,
        max_ms=figures.max_ms,
        errors=figures.errors,
    )
