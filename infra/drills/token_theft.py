"""The token-theft drill: a viewer's token is stolen and used abroad; how fast is it stopped?

Against the live stack: two auth instances (two regions, separate processes, each
embedding the revocation enforcer) and the stream processors. The rightful viewer plays
from England; a thief replays the same token from the USA. The theft agent sees both
uses, revokes the session and publishes a re-issue notice; the viewer signs in again.
Measured: time to detection, time until every instance refuses the stolen token, time
until the viewer plays again, and whether any stolen request succeeded after enforcement.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from confluent_kafka import Consumer

from liveward.settings import Settings
from streams.codec import default_codec
from streams.consumer import consumer_config
from streams.events import ReissueNotice

CONTENT = "drill-live"
VIEWER_IP = "2.125.160.218"  # England in the demo geo databases (services/access/demo_geo.py)
THIEF_IP = "216.160.83.58"  # Washington, USA
REVOKED = {"session-revoked", "token-revoked", "viewer-revoked", "device-revoked"}


@dataclass(slots=True)
class TheftDrillReport:
    """The drill's figures, seconds from the thief's first use unless said otherwise."""

    rule: str = ""
    detection_s: float | None = None
    enforced_s: dict[str, float] = field(default_factory=dict)
    reissue_s: float | None = None  # from detection until the viewer plays on a new token
    stolen_ok_before: int = 0
    stolen_ok_after_enforcement: int = 0
    stolen_refused_after_enforcement: int = 0
    stolen_renewal_refused: bool = False

    @property
    def enforced_everywhere_s(self) -> float | None:
        return max(self.enforced_s.values()) if self.enforced_s else None

    @property
    def passed(self) -> bool:
        return (
            self.detection_s is not None
            and self.enforced_everywhere_s is not None
            and self.reissue_s is not None
            and self.stolen_ok_after_enforcement == 0
            and self.stolen_renewal_refused
        )


@dataclass(frozen=True, slots=True)
class AuthInstance:
    """One running auth service."""

    region: str
    url: str


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _watch_notices(settings: Settings, session_id: str, seen: Callable[[ReissueNotice], None],
                   stop: threading.Event) -> None:  # fmt: skip
    consumer = Consumer(consumer_config(settings, f"drill-theft-{uuid.uuid4().hex}"))
    consumer.subscribe(["auth.reissue-notices"])
    codec = default_codec()
    try:
        while not stop.is_set():
            for message in consumer.consume(100, timeout=0.05):
                if message.error() is None and message.value():
                    notice = codec.decode_as(message.value() or b"", ReissueNotice)
                    if notice.session_id == session_id:
                        seen(notice)
                        return
    finally:
        consumer.close()


def run_token_theft_drill(
    settings: Settings,
    instances: list[AuthInstance],
    *,
    timeout_s: float = 30.0,
    after_enforcement_s: float = 3.0,
) -> TheftDrillReport:
    """Run the story once against running auth instances and stream processors."""
    report = TheftDrillReport()
    admin = _bearer(settings.auth.admin_api_key.get_secret_value())
    app_key = settings.auth.app_api_key.get_secret_value()
    app = _bearer(app_key)
    viewer_id = f"drill-viewer-{uuid.uuid4().hex[:8]}"
    home, away = instances[0], instances[-1]
    with httpx.Client(timeout=5.0) as http:
        http.put(
            f"{home.url}/v1/subscribers/{viewer_id}",
            headers=admin,
            json={"content_ids": [CONTENT], "packages": [], "device_classes": ["web"],
                  "max_concurrent_streams": 2, "home_country": "GB", "active": True},
        ).raise_for_status()  # fmt: skip

        def issue() -> dict[str, str]:
            deadline = time.monotonic() + timeout_s
            while True:
                answer = http.post(
                    f"{home.url}/v1/tokens",
                    headers=app,
                    json={"viewer_id": viewer_id, "content_id": CONTENT, "device_id": "laptop-1",
                          "device_class": "web", "client_ip": VIEWER_IP},
                )  # fmt: skip
                if answer.status_code == 200:
                    return dict(answer.json())
                # The auth view of subscribers follows a topic: a fresh PUT may take a moment.
                reason = answer.json().get("error")
                if reason != "unknown-viewer" or time.monotonic() > deadline:
                    raise RuntimeError(f"token issue refused: {answer.status_code} {answer.text}")
                time.sleep(0.1)

        def use(instance: AuthInstance, token: str, ip: str) -> tuple[bool, str]:
            # The drill plays the edge service that saw the player's address: it has a key.
            answer = http.post(
                f"{instance.url}/v1/tokens/introspect",
                headers={**_bearer(token), "X-Api-Key": app_key},
                json={"content_id": CONTENT, "client_ip": ip},
            )
            body = answer.json()
            return answer.status_code == 200, str(body.get("error", "allowed"))

        token = issue()
        stolen = token["token"]
        ok, why = use(home, stolen, VIEWER_IP)
        if not ok:
            raise RuntimeError(f"the viewer's own first use was refused: {why}")

        detected = threading.Event()
        notice_box: list[ReissueNotice] = []
        stop = threading.Event()

        def on_notice(notice: ReissueNotice) -> None:
            notice_box.append(notice)
            detected.set()

        watcher = threading.Thread(
            target=_watch_notices,
            args=(settings, token["session_id"], on_notice, stop),
            daemon=True,
        )
        watcher.start()
        time.sleep(1.0)  # let the watcher join before the theft starts

        theft_at = time.monotonic()
        detected_at: float | None = None
        enforced_at: dict[str, float] = {}
        deadline = theft_at + timeout_s
        while time.monotonic() < deadline:
            for instance in instances:
                ok, why = use(instance, stolen, THIEF_IP)
                now = time.monotonic()
                if instance.region in enforced_at:
                    if ok:
                        report.stolen_ok_after_enforcement += 1
                    else:
                        report.stolen_refused_after_enforcement += 1
                elif ok:
                    report.stolen_ok_before += 1
                elif why in REVOKED:
                    enforced_at[instance.region] = now
            if detected_at is None and detected.is_set():
                detected_at = time.monotonic()
                # The viewer's app got the notice: sign in again and play on a new session.
                fresh = issue()
                ok, _ = use(home, fresh["token"], VIEWER_IP)
                if ok:
                    report.reissue_s = time.monotonic() - detected_at
            if len(enforced_at) == len(instances):
                last = max(enforced_at.values())
                if time.monotonic() - last >= after_enforcement_s:
                    break
            time.sleep(0.02)
        stop.set()

        report.enforced_s = {r: t - theft_at for r, t in enforced_at.items()}
        if detected_at is not None:
            report.detection_s = detected_at - theft_at
            report.rule = notice_box[0].rule if notice_box else ""
        renewal = http.post(f"{away.url}/v1/tokens/renew", headers=_bearer(stolen))
        report.stolen_renewal_refused = renewal.status_code in (401, 403)
    return report


def drill_policy(path: Path) -> Path:
    """A policy for the drill's content with IP binding off, so the theft detector is what
    stops the thief (with binding on, the thief's first foreign use is refused outright)."""
    path.write_text(
        f'[content."{CONTENT}"]\nallowed_countries = ["GB", "US"]\nip_binding = "none"\n'
    )
    return path
