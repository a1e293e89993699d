"""Playback tokens for the console's player, asked of the auth service with the app key.

One session per (viewer, content) is kept and renewed, so reloading the page does not open
a new stream each time (the viewer's concurrent-stream limit would soon refuse it). A
renewal the page asks for is only ever a renewal: a refused one (the viewer was revoked)
is answered with the auth service's reason, so the player stops and says why.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx

from liveward.settings import Settings
from services.console.errors import ActionFailed

AUTH_TIMEOUT_S = 5.0
# How long after a PUT the auth service may take to see a new subscriber.
SUBSCRIBER_VISIBLE_S = 5.0
DEVICE_CLASS = "web"


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    session_id: str
    expires_at: int  # epoch seconds

    def answer(self) -> dict[str, Any]:
        return {"token": self.token, "session_id": self.session_id, "expires_at": self.expires_at}


class ViewerTokens:
    """Issues, reuses and renews tokens through the auth service at `auth_url`.

    `client_ip` is the address the token is bound to: the browser's, as the console saw
    it, unless the host fixes one (`viewer_ip`). Refusals raise ActionFailed carrying the
    auth service's status and reason code.
    """

    def __init__(
        self, settings: Settings, *, auth_url: str | None = None, viewer_ip: str | None = None
    ) -> None:
        self._settings = settings
        self._auth = auth_url or settings.services.auth_base_url
        self._viewer_ip = viewer_ip
        self._app_key = settings.auth.app_api_key.get_secret_value()
        self._admin_key = settings.auth.admin_api_key.get_secret_value()
        self._sessions: dict[tuple[str, str], IssuedToken] = {}
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=AUTH_TIMEOUT_S)

    def close(self) -> None:
        self._client.close()

    def token_for(
        self, viewer_id: str, content_id: str, *, client_ip: str, renew: str | None = None
    ) -> IssuedToken:
        """A token for the page: `renew` renewed, else the kept session renewed, else a new
        session (creating the console's subscriber the first time)."""
        ip = self._viewer_ip or client_ip
        if renew is not None:
            issued = self._renew(renew, ip)
            self._keep(viewer_id, content_id, issued)
            return issued
        with self._lock:
            kept = self._sessions.get((viewer_id, content_id))
        if kept is not None and kept.expires_at > time.time() + 5:
            # A refused renewal (revoked, expired) falls through to a new sign-in.
            with contextlib.suppress(ActionFailed):
                issued = self._renew(kept.token, ip)
                self._keep(viewer_id, content_id, issued)
                return issued
        issued = self._issue(viewer_id, content_id, ip)
        self._keep(viewer_id, content_id, issued)
        return issued

    def _keep(self, viewer_id: str, content_id: str, issued: IssuedToken) -> None:
        with self._lock:
            self._sessions[(viewer_id, content_id)] = issued

    def _issue(self, viewer_id: str, content_id: str, ip: str) -> IssuedToken:
        body = {
            "viewer_id": viewer_id,
            "content_id": content_id,
            "device_id": f"console-{viewer_id}",
            "device_class": DEVICE_CLASS,
            "client_ip": ip,
        }
        headers = {"Authorization": f"Bearer {self._app_key}"}
        answer = self._post("/v1/tokens", headers, body)
        if answer.status_code == 403 and _reason(answer) == "unknown-viewer":
            self._create_subscriber(viewer_id, content_id)
            deadline = time.monotonic() + SUBSCRIBER_VISIBLE_S
            while answer.status_code == 403 and _reason(answer) == "unknown-viewer":
                if time.monotonic() > deadline:
                    break
                time.sleep(0.1)
                answer = self._post("/v1/tokens", headers, body)
        return _issued(answer)

    def _renew(self, token: str, ip: str) -> IssuedToken:
        # The console is the viewer's proxy here: a trusted one is believed about the address.
        headers = {"Authorization": f"Bearer {token}", "X-Forwarded-For": ip}
        return _issued(self._post("/v1/tokens/renew", headers, None))

    def _create_subscriber(self, viewer_id: str, content_id: str) -> None:
        answer = self._client.put(
            f"{self._auth}/v1/subscribers/{viewer_id}",
            headers={"Authorization": f"Bearer {self._admin_key}"},
            json={
                "content_ids": [content_id],
                "device_classes": [DEVICE_CLASS],
                "max_concurrent_streams": 4,
            },
        )
        if answer.status_code != 200:
            raise _refusal(answer)

    def _post(self, path: str, headers: dict[str, str], body: Any) -> httpx.Response:
        try:
            return self._client.post(f"{self._auth}{path}", headers=headers, json=body)
        except httpx.HTTPError as exc:
            raise ActionFailed("auth-unreachable", f"{self._auth}: {exc}") from exc


def _issued(answer: httpx.Response) -> IssuedToken:
    if answer.status_code != 200:
        raise _refusal(answer)
    body = answer.json()
    return IssuedToken(str(body["token"]), str(body["session_id"]), int(body["expires_at"]))


def _reason(answer: httpx.Response) -> str:
    try:
        body = answer.json()
    except ValueError:
        return ""
    return str(body.get("error", "")) if isinstance(body, dict) else ""


def _refusal(answer: httpx.Response) -> ActionFailed:
    try:
        body = answer.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    status = answer.status_code if 400 <= answer.status_code < 600 else 502
    return ActionFailed(
        str(body.get("error", "auth-refused")),
        str(body.get("message", f"the auth service answered {answer.status_code}")),
        status=status,
    )
