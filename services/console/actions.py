"""The console's actions: the protocol a host process provides, and the pure checks of what
a page asks for (JSON bodies in, a validated argument out, or ActionRefused with a reason)."""

from __future__ import annotations

import re
from typing import Any, Protocol

import orjson

from services.console.errors import ActionRefused

# Viewer and content ids travel into URLs and tokens; keep them to a safe alphabet.
VIEWER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}$")
CONTENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# A playback token is a compact JWS or JWE (base64url parts joined by dots).
TOKEN = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]*){2,4}$")
MAX_TOKEN_BYTES = 4096


class ConsoleActions(Protocol):
    """What the console's buttons do, bound by the host (`liveward run`, a test) to the
    system it runs. Each returns a JSON-able account of what happened, or raises a
    ConsoleError (ActionFailed when what it calls fails)."""

    def kill_region(self, region: str) -> dict[str, Any]:
        """SIGKILL every process of a region at once (a region loss)."""
        ...

    def restore_region(self, region: str) -> dict[str, Any]:
        """Start again every process of a region that is not running."""
        ...

    def revoke_viewer(self, viewer_id: str) -> dict[str, Any]:
        """Revoke every token the viewer holds now (scope `viewer`)."""
        ...

    def rotate_keys(self) -> dict[str, Any]:
        """Start a new key epoch at once (an emergency rotation)."""
        ...


def parse_body(raw: bytes) -> dict[str, Any]:
    """A request body as a JSON object; an empty body is `{}`."""
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ActionRefused("malformed-json", f"the body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ActionRefused("malformed-request", "the body must be a JSON object")
    return body


def _only(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ActionRefused("unknown-field", f"unknown fields: {', '.join(unknown)}")


def region_of(body: dict[str, Any], regions: tuple[str, ...]) -> str:
    """The `region` a kill or restore names: one of `regions`."""
    _only(body, {"region"})
    region = body.get("region")
    if region is None:
        raise ActionRefused("missing-region", 'name the region: {"region": ...}')
    if not isinstance(region, str):
        raise ActionRefused("malformed-region", "region must be a string")
    if region not in regions:
        raise ActionRefused(
            "unknown-region", f"{region[:64]!r} is not one of {', '.join(regions)}", status=404
        )
    return region


def viewer_of(body: dict[str, Any], default: str) -> str:
    """The `viewer_id` to revoke; the console's own viewer when the body names none."""
    _only(body, {"viewer_id"})
    viewer = body.get("viewer_id", default)
    if not isinstance(viewer, str) or VIEWER_ID.match(viewer) is None:
        raise ActionRefused(
            "malformed-viewer-id", "viewer_id is 1-128 characters of [A-Za-z0-9._@:-]"
        )
    return viewer


def rotation_of(body: dict[str, Any]) -> None:
    """A rotation takes no arguments; the console only rotates in an emergency."""
    _only(body, {"emergency"})
    if body.get("emergency", True) is not True:
        raise ActionRefused(
            "emergency-only", "the console rotates in an emergency; scheduled epochs need none"
        )


def token_request_of(
    body: dict[str, Any], viewer: str, content: str
) -> tuple[str, str, str | None]:
    """(viewer id, content id, token to renew or None) of a `POST /api/token`."""
    _only(body, {"viewer_id", "content_id", "renew"})
    viewer_id = body.get("viewer_id", viewer)
    content_id = body.get("content_id", content)
    renew = body.get("renew")
    if not isinstance(viewer_id, str) or VIEWER_ID.match(viewer_id) is None:
        raise ActionRefused(
            "malformed-viewer-id", "viewer_id is 1-128 characters of [A-Za-z0-9._@:-]"
        )
    if not isinstance(content_id, str) or CONTENT_ID.match(content_id) is None:
        raise ActionRefused(
            "malformed-content-id", "content_id is 1-64 characters of [A-Za-z0-9._-]"
        )
    if renew is not None and (
        not isinstance(renew, str) or len(renew) > MAX_TOKEN_BYTES or TOKEN.match(renew) is None
    ):
        raise ActionRefused("malformed-token", "renew must be a compact JWS/JWE token")
    return viewer_id, content_id, renew
