"""The key-leak drill: a content key leaks, then an epoch master key; contain both.

Against the live stack with license instances in two regions. First a viewer's license
is taken and its current-period content key declared leaked: the drill finds, in the
license log topic, every session that was handed that key id, revokes those sessions,
and rotates in an emergency so the rest of the period is served under a new key. Then
the epoch master key in force is declared leaked (unwrapped with a region's KEK, as an
insider would) and the drill rotates in an emergency again. Measured: the blast radius
of each leak, the time until every region serves only new-epoch keys, and whether any
license handed out a leaked key afterwards (it must not).
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import httpx
from confluent_kafka import Consumer

from liveward.settings import Settings
from services.keys.derivation import key_id as derive_key_id
from services.keys.epochs import unwrap_master_key
from services.keys.exposure import Exposure, content_key_exposure, master_key_exposure
from services.keys.keystore import KeyStore
from services.keys.kms import local_keks, local_keks_of_every_region
from services.keys.rotation import Rotator
from services.keys.timeline import RotationPolicy
from streams.codec import default_codec
from streams.consumer import consumer_config
from streams.events import KeyEpoch, LicenseDecision, LicenseIssued
from streams.meta import now_ms
from streams.producer import EventProducer

CONTENT = "drill-keys"
VIEWER_IP = "2.125.160.218"  # England in the demo geo databases


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class LicenseInstance:
    region: str
    url: str


@dataclass(slots=True)
class LeakResponse:
    """One leak and its containment."""

    exposure_before: Exposure
    exposure_after: Exposure
    switch_s: dict[str, float] = field(default_factory=dict)  # region → serving new keys
    leaked_keys_served_after: int = 0
    checks_after: int = 0

    @property
    def switched_everywhere_s(self) -> float | None:
        return max(self.switch_s.values()) if self.switch_s else None


@dataclass(slots=True)
class KeyLeakReport:
    content_leak: LeakResponse | None = None
    sessions_revoked: int = 0
    leaker_refusal: str = ""
    leaked_kid_refusal: str = ""
    master_leak: LeakResponse | None = None

    @property
    def passed(self) -> bool:
        leaks = (self.content_leak, self.master_leak)
        return (
            all(leak is not None for leak in leaks)
            and all(
                leak.leaked_keys_served_after == 0 and leak.checks_after > 0
                for leak in leaks
                if leak is not None
            )
            and self.leaker_refusal == "session-revoked"
            and self.leaked_kid_refusal == "unknown-key-id"
        )


@contextmanager
def key_stores(settings: Settings, regions: tuple[str, ...]) -> Iterator[list[KeyStore]]:
    """One caught-up KeyStore per region, as each region's services see the keys."""
    stores = [KeyStore(settings, region, keks=local_keks(settings, region)) for region in regions]
    try:
        for store in stores:
            store.start()
            store.wait_ready(30)
        yield stores
    finally:
        for store in stores:
            store.close()


class _Viewer:
    """A subscriber with a token, asking license instances for keys as a player would."""

    def __init__(self, http: httpx.Client, settings: Settings, auth_url: str) -> None:
        self._http = http
        self._settings = settings
        self._auth_url = auth_url
        self.viewer_id = f"drill-viewer-{uuid.uuid4().hex[:8]}"
        admin = settings.auth.admin_api_key.get_secret_value()
        http.put(
            f"{auth_url}/v1/subscribers/{self.viewer_id}",
            headers={"Authorization": f"Bearer {admin}"},
            json={"content_ids": [CONTENT], "device_classes": ["web"],
                  "max_concurrent_streams": 10, "home_country": "GB"},
        ).raise_for_status()  # fmt: skip

    def token(self) -> dict[str, str]:
        app = self._settings.auth.app_api_key.get_secret_value()
        deadline = time.monotonic() + 30
        while True:
            answer = self._http.post(
                f"{self._auth_url}/v1/tokens",
                headers={"Authorization": f"Bearer {app}", "X-Forwarded-For": VIEWER_IP},
                json={"viewer_id": self.viewer_id, "content_id": CONTENT,
                      "device_id": f"laptop-{uuid.uuid4().hex[:6]}", "device_class": "web"},
            )  # fmt: skip
            if answer.status_code == 200:
                return dict(answer.json())
            if answer.json().get("error") != "unknown-viewer" or time.monotonic() > deadline:
                raise RuntimeError(f"token refused: {answer.status_code} {answer.text}")
            time.sleep(0.1)

    def license(
        self, instance: LicenseInstance, token: str, kids: list[bytes], patience_s: float = 15.0
    ) -> httpx.Response:
        """The answer to a ClearKey request; a 503 is retried after its Retry-After, as a
        player does (an instance just started may not hold the signing keys yet)."""
        deadline = time.monotonic() + patience_s
        while True:
            answer = self._http.post(
                f"{instance.url}/v1/license/clearkey",
                headers={"Authorization": f"Bearer {token}", "X-Forwarded-For": VIEWER_IP},
                json={"kids": [b64url(k) for k in kids], "type": "temporary"},
            )
            if answer.status_code != 503 or time.monotonic() >= deadline:
                return answer
            time.sleep(min(float(answer.headers.get("Retry-After", "1")), 1.0))


def _current_kids(store: KeyStore) -> list[bytes]:
    current, upcoming = store.current_and_next(CONTENT, now_ms())
    return [current.key_id_bytes, upcoming.key_id_bytes]


def _served(answer: httpx.Response) -> dict[str, bytes]:
    """key id (hex) → key of a granted ClearKey license."""
    if answer.status_code != 200:
        raise RuntimeError(f"license refused: {answer.status_code} {answer.text}")
    return {b64url_decode(k["kid"]).hex(): b64url_decode(k["k"]) for k in answer.json()["keys"]}


def _sessions_handed(settings: Settings, key_id_hex: str, timeout: float = 10.0) -> set[str]:
    """Sessions the license log topic shows were granted key_id_hex, read to its end."""
    group = f"drill-leak-{uuid.uuid4().hex}"
    consumer = Consumer(consumer_config(settings, group, **{"enable.partition.eof": True}))
    consumer.subscribe(["drm.licenses"])  # one partition: its end is the log's end
    codec = default_codec()
    sessions: set[str] = set()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=0.5):
                if message.error() is not None:
                    if sessions:
                        return sessions
                    continue
                issued = codec.decode_as(message.value() or b"", LicenseIssued)
                if issued.decision == LicenseDecision.GRANTED and key_id_hex in issued.key_ids:
                    sessions.add(issued.session_id)
    finally:
        consumer.close()
    return sessions


def _wait_serving_new_keys(
    viewer: _Viewer,
    instances: list[LicenseInstance],
    store: KeyStore,
    leaked: set[str],
    began: float,
    response: LeakResponse,
    timeout: float = 30.0,
) -> None:
    """Per region: the time until a fresh license holds no leaked key id any more."""
    token = viewer.token()["token"]
    deadline = began + timeout
    pending = list(instances)
    while pending and time.monotonic() < deadline:
        for instance in list(pending):
            answer = viewer.license(instance, token, _current_kids(store))
            if answer.status_code == 200 and not set(_served(answer)) & leaked:
                response.switch_s[instance.region] = time.monotonic() - began
                pending.remove(instance)
        time.sleep(0.02)
    # After the switch, keep asking: no license may carry a leaked key id again.
    for _ in range(10):
        for instance in instances:
            answer = viewer.license(instance, token, _current_kids(store))
            response.checks_after += 1
            if answer.status_code == 200 and set(_served(answer)) & leaked:
                response.leaked_keys_served_after += 1


def run_key_leak_drill(
    settings: Settings, auth_url: str, instances: list[LicenseInstance]
) -> KeyLeakReport:
    """The whole story against running auth and license instances and the worker."""
    report = KeyLeakReport()
    regions = tuple(i.region for i in instances)
    producer = EventProducer(settings)
    admin = settings.auth.admin_api_key.get_secret_value()
    with key_stores(settings, regions) as stores, httpx.Client(timeout=10.0) as http:
        home = stores[0]
        rotator = Rotator(
            home,
            local_keks_of_every_region(settings),
            producer,
            policy=RotationPolicy(period_seconds=settings.keys.period_seconds),
        )
        created = rotator.ensure_epoch()
        if created is not None:
            for store in stores:
                store.wait_for_epoch(created.epoch_id, 30)
        viewer = _Viewer(http, settings, auth_url)

        # 1. A content key leaks: the current period's key of a license someone got.
        leaker = viewer.token()
        # One reading of the clock for the kids and the check: a period boundary may fall
        # between two readings.
        current, upcoming = home.current_and_next(CONTENT, now_ms())
        kids = [current.key_id_bytes, upcoming.key_id_bytes]
        leaked_id = current.key_id
        served = _served(viewer.license(instances[0], leaker["token"], kids))
        if served.get(leaked_id) != current.key:
            raise RuntimeError("the license did not carry the key the hierarchy derives")
        period_seconds = (current.end_ms - current.start_ms) // 1000
        before = content_key_exposure(CONTENT, current.period, current.epoch_id, period_seconds)
        sessions = _sessions_handed(settings, leaked_id)
        for session in sessions:
            http.post(
                f"{auth_url}/v1/revocations",
                headers={"Authorization": f"Bearer {admin}"},
                json={"scope": "session", "subject": session, "reason": "key-leak"},
            ).raise_for_status()
        report.sessions_revoked = len(sessions)
        began = time.monotonic()
        rotator.rotate(emergency=True)
        response = LeakResponse(exposure_before=before, exposure_after=before)
        _wait_serving_new_keys(viewer, instances, home, {leaked_id}, began, response)
        report.content_leak = response
        # The leaker's session is dead everywhere; the leaked key id is unknown now.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            refusal = viewer.license(instances[-1], leaker["token"], _current_kids(home))
            report.leaker_refusal = str(refusal.json().get("error", "granted"))
            if report.leaker_refusal == "session-revoked":
                break
            time.sleep(0.05)
        fresh = viewer.token()["token"]
        asked_leaked = viewer.license(instances[0], fresh, [bytes.fromhex(leaked_id)])
        report.leaked_kid_refusal = str(asked_leaked.json().get("error", "granted"))

        # 2. The epoch master key in force leaks.
        epoch_info = home.epoch_in_force(now_ms())
        insider_keks = local_keks(settings, home.region)
        master = unwrap_master_key(_epoch_event(settings, epoch_info.epoch_id), insider_keks)
        around = home.period_at(now_ms()).number
        leaked_ids = {
            derive_key_id(master, epoch_info.epoch_id, CONTENT, p).hex()
            for p in range(around - 2, around + 3)
        }
        before = master_key_exposure(home.epochs(), epoch_info.epoch_id)
        began = time.monotonic()
        rotator.rotate(emergency=True)
        replaced = home.period_at(now_ms())
        response = LeakResponse(exposure_before=before, exposure_after=before)
        _wait_serving_new_keys(viewer, instances, home, leaked_ids, began, response)
        # Keys of the leaked epoch went out until the switch, in the period it happened in:
        # that period is exposed too, even though the new epoch governs it from its start.
        response.exposure_after = replace(before, end_ms=replaced.end_ms)
        report.master_leak = response
    producer.close()
    return report


def _epoch_event(settings: Settings, epoch_id: str, timeout: float = 10.0) -> KeyEpoch:
    """The wrapped epoch as published (what an insider with a KEK would unwrap)."""
    consumer = Consumer(consumer_config(settings, f"drill-epochs-{uuid.uuid4().hex}"))
    consumer.subscribe(["keys.epochs"])
    codec = default_codec()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for message in consumer.consume(100, timeout=0.5):
                if message.error() is None and message.value():
                    epoch = codec.decode_as(message.value() or b"", KeyEpoch)
                    if epoch.epoch_id == epoch_id:
                        return epoch
    finally:
        consumer.close()
    raise RuntimeError(f"epoch {epoch_id} not found on keys.epochs")
