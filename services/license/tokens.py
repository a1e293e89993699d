"""Playback tokens at the license service: the auth service's JWKS over HTTP, verification,
and a cache of verified tokens.

The JWKS is fetched at start, again on a timer (well inside the auth service's
`max-age`), and again when a token names a kid we do not know, at most once a second so
forged kids cannot turn into a fetch storm. The auth service publishes its next signing
key a whole rotation before it signs with it, so a real player never waits on a fetch.

A token that verified is remembered (keyed by a digest of its bytes) until it expires:
a player presents the same token for every key period of its lifetime, and the Ed25519
check is most of a license's cost. A hit still checks the times against the clock, so
an expired token is refused exactly as a fresh verification would. Revocation is not
cached here: the service checks the revocation list on every request.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import httpx

from services.auth.errors import TokenRejected
from services.auth.signing_keys import public_keys
from services.auth.tokens import CLOCK_SKEW_S, PlaybackClaims, TokenVerifier, check_claims
from services.license.errors import LicenseError, Refusal

log = logging.getLogger(__name__)

JWKS_PATH = "/.well-known/jwks.json"
# Re-fetched this often anyway: the auth service lets caches keep it 60 s.
REFRESH_EVERY_S = 30.0
# An unknown kid re-fetches at most this often.
MIN_REFETCH_S = 1.0
# Verified tokens remembered; each costs ~2 kB (its claims), so 20k is ~40 MB.
MAX_CACHED_TOKENS = 20_000


class JwksSource(Protocol):
    """Where the public keys come from; `fetch` raises LicenseError when it cannot."""

    def fetch(self) -> Mapping[str, Any]: ...


class HttpJwks:
    """The auth service's `/.well-known/jwks.json`."""

    def __init__(self, base_url: str, *, timeout: float = 1.0) -> None:
        self.url = base_url.rstrip("/") + JWKS_PATH
        self._client = httpx.Client(timeout=timeout)

    def fetch(self) -> Mapping[str, Any]:
        try:
            response = self._client.get(self.url)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise LicenseError(
                Refusal.UNAVAILABLE, "jwks-unavailable", f"cannot fetch {self.url}: {exc}"
            ) from exc
        if not isinstance(document, dict):
            raise LicenseError(Refusal.UNAVAILABLE, "jwks-unavailable", f"{self.url}: not a JWKS")
        return document

    def close(self) -> None:
        self._client.close()


class PlaybackTokens:
    """Verifies playback tokens as the auth service would, from its published keys."""

    def __init__(
        self,
        source: JwksSource,
        *,
        issuer: str,
        audience: str,
        encryption_key: bytes | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        max_cached: int = MAX_CACHED_TOKENS,
    ) -> None:
        self._source = source
        self._issuer = issuer
        self._audience = audience
        self._encryption_key = encryption_key
        self._monotonic = monotonic
        self._max_cached = max_cached
        self._verifier: TokenVerifier | None = None
        self._keys: dict[str, bytes] = {}
        self._seen_kids: set[str] = set()
        self._fetch_lock = threading.Lock()
        self._last_fetch = float("-inf")
        self._verified: dict[bytes, PlaybackClaims] = {}
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None
        self.cache_hits = 0
        self.fetches = 0

    def ready(self) -> bool:
        return self._verifier is not None

    def refresh(self) -> bool:
        """Fetch the JWKS now; True if the key set changed. Raises LicenseError."""
        with self._fetch_lock:
            self._last_fetch = self._monotonic()
            self.fetches += 1
            keys = public_keys(self._source.fetch())
            if keys == self._keys and self._verifier is not None:
                return False
            # A kid we saw that is gone was retired (or withdrawn): say so, as auth would.
            self._seen_kids |= keys.keys()
            retired = self._seen_kids - keys.keys()
            self._verifier = TokenVerifier(
                keys,
                issuer=self._issuer,
                audience=self._audience,
                retired_kids=retired,
                encryption_key=self._encryption_key,
            )
            # Tokens verified under a key that is no longer published must verify again.
            if not keys.keys() >= self._keys.keys():
                self._verified = {}
            self._keys = keys
            return True

    def _refetch_for_unknown_kid(self) -> bool:
        if self._monotonic() - self._last_fetch < MIN_REFETCH_S:
            return False
        try:
            return self.refresh()
        except LicenseError as exc:
            log.warning("JWKS re-fetch for an unknown kid failed: %s", exc)
            return False

    def verify(self, token: str | None, *, now: float) -> PlaybackClaims:
        """The token's claims; TokenRejected (a reason of the auth service's) when it is
        bad, LicenseError `not-ready` before the first JWKS arrived."""
        digest = hashlib.blake2b(token.encode(), digest_size=16).digest() if token else b""
        cached = self._verified.get(digest) if token else None
        if cached is not None:
            check_claims(
                cached,
                now=now,
                issuer=self._issuer,
                audience=self._audience,
                leeway_s=CLOCK_SKEW_S,
            )
            self.cache_hits += 1
            return cached
        verifier = self._verifier
        if verifier is None:
            raise LicenseError(Refusal.UNAVAILABLE, "not-ready", "no signing keys yet")
        try:
            claims = verifier.verify(token, now=now)
        except TokenRejected as exc:
            if exc.reason != "kid-unknown" or not self._refetch_for_unknown_kid():
                raise
            verifier = self._verifier
            assert verifier is not None
            claims = verifier.verify(token, now=now)
        if len(self._verified) >= self._max_cached:
            self._verified = {
                d: c for d, c in self._verified.items() if c.expires_at + CLOCK_SKEW_S > now
            }
            if len(self._verified) >= self._max_cached:
                self._verified = {}
        self._verified[digest] = claims
        return claims

    def start(self, every_s: float = REFRESH_EVERY_S) -> None:
        """Fetch now if possible, then keep the keys fresh on a thread; until a first
        fetch succeeds it retries every second (`ready()` stays false meanwhile)."""
        self._timer = threading.Thread(
            target=self._keep_fresh, args=(every_s,), name="jwks-refresh", daemon=True
        )
        self._timer.start()

    def _keep_fresh(self, every_s: float) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except LicenseError as exc:
                log.warning("%s", exc)
            self._stop.wait(every_s if self.ready() else MIN_REFETCH_S)

    def close(self) -> None:
        self._stop.set()
        if self._timer is not None:
            self._timer.join(timeout=2.0)
