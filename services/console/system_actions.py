"""The console's actions bound to a running `LiveSystem`: regions killed and restarted in
process, revocations through the auth service, emergency rotations through the key hierarchy."""

from __future__ import annotations

from typing import Any

import httpx

from infra.live_system import LiveSystem
from liveward.errors import LivewardError
from liveward.settings import Settings
from services.console.errors import ActionFailed, ActionRefused
from services.keys.local import local_rotator
from services.keys.timeline import RotationPolicy
from services.media.region import RegionProcesses

AUTH_TIMEOUT_S = 5.0
KEYS_TIMEOUT_S = 30.0


class SystemActions:
    """`ConsoleActions` on the regions, auth service and key hierarchy of a live system."""

    def __init__(self, settings: Settings, system: LiveSystem) -> None:
        self._settings = settings
        self._system = system

    def _region(self, region: str) -> RegionProcesses:
        for media in self._system.media:
            if media.region == region:
                return media
        raise ActionRefused(
            "region-not-managed",
            f"{region} has no media processes this console may control",
            status=409,
        )

    def kill_region(self, region: str) -> dict[str, Any]:
        media = self._region(region)
        return {"region": region, "killed": media.kill()}

    def restore_region(self, region: str) -> dict[str, Any]:
        # Start without waiting for a live window: the page shows the region coming back.
        media = self._region(region)
        already = {s.role for s in media.status() if s.pid is not None}
        try:
            started = [m.role for m in media.members if m.role not in already]
            for role in started:
                media.start_member(role)
        except LivewardError as exc:
            raise ActionFailed(exc.reason, f"{region} could not be restarted: {exc}") from exc
        return {"region": region, "started": started}

    def revoke_viewer(self, viewer_id: str) -> dict[str, Any]:
        auth = self._auth_url()
        admin = self._settings.auth.admin_api_key.get_secret_value()
        try:
            answer = httpx.post(
                f"{auth}/v1/revocations",
                headers={"Authorization": f"Bearer {admin}"},
                json={"scope": "viewer", "subject": viewer_id, "reason": "console"},
                timeout=AUTH_TIMEOUT_S,
            )
        except httpx.HTTPError as exc:
            raise ActionFailed("auth-unreachable", f"{auth}: {exc}") from exc
        body = _json(answer)
        if answer.status_code != 202:
            raise ActionFailed(
                str(body.get("error", "revocation-refused")),
                str(body.get("message", f"the auth service answered {answer.status_code}")),
                status=answer.status_code if 400 <= answer.status_code < 600 else 502,
            )
        return {"viewer_id": viewer_id, **body}

    def rotate_keys(self) -> dict[str, Any]:
        settings = self._settings
        policy = RotationPolicy(period_seconds=settings.keys.period_seconds)
        contents = [settings.console.content_id]
        try:
            with local_rotator(settings, KEYS_TIMEOUT_S, policy, contents) as rotator:
                outcome = rotator.rotate(emergency=True)
        except LivewardError as exc:
            raise ActionFailed(exc.reason, f"the rotation failed: {exc}") from exc
        return {
            "epochs": [e.epoch_id for e in outcome.created],
            "started_at": [e.started_at for e in outcome.created],
            "withdrawn": list(outcome.withdrawn),
            "announced": [
                {"content_id": e.content_id, "period": e.period, "key_id": e.key_id}
                for e in outcome.announced
            ],
        }

    def _auth_url(self) -> str:
        running = self._system.of("auth")
        return running[0].url if running else self._settings.services.auth_base_url


def _json(answer: httpx.Response) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
