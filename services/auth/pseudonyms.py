"""Keyed pseudonyms of viewers and devices for the security topics (HMAC-SHA256, hex)."""

from __future__ import annotations

import hashlib
import hmac


class Pseudonyms:
    """Turns raw viewer and device ids into stable, unlinkable-without-the-key references.

    The kind is mixed into the message so a viewer and a device that happen to share an
    id never share a reference.
    """

    def __init__(self, key: bytes) -> None:
        if not key:
            raise ValueError("the pseudonym key must not be empty")
        self._key = key

    def _ref(self, kind: bytes, subject: str) -> str:
        return hmac.new(self._key, kind + b"\x00" + subject.encode(), hashlib.sha256).hexdigest()

    def viewer_ref(self, viewer_id: str) -> str:
        return self._ref(b"viewer", viewer_id)

    def device_ref(self, device_id: str) -> str:
        return self._ref(b"device", device_id)
