"""The W3C EME ClearKey license exchange, pure: parse a license request, build the answer.

A ClearKey CDM sends `{"kids": ["<base64url key id>", ...], "type": "temporary"}` and
takes back a JSON Web Key set, `{"keys": [{"kty": "oct", "kid": ..., "k": ...}], "type":
"temporary"}`, with key ids and keys base64url without padding (EME, "Clear Key").
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from services.keys.keystore import ContentKey
from services.license.errors import LicenseError, Refusal

KEY_ID_BYTES = 16
# A CDM asks for the key ids of one init segment: a handful. More is not a player.
MAX_KIDS = 16
# Only temporary sessions: a persisted license would outlive its key periods and any
# revocation, which is the opposite of what a live license is for.
SESSION_TYPE = "temporary"
_B64URL = re.compile(r"^[A-Za-z0-9_-]*={0,2}$")


@dataclass(frozen=True, slots=True)
class ClearKeyRequest:
    """The key ids a CDM asked for, as bytes, in the order it asked (duplicates dropped)."""

    kids: tuple[bytes, ...]
    session_type: str = SESSION_TYPE


def b64url(raw: bytes) -> str:
    """base64url without padding, as JWK and EME want it."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """base64url with or without padding; ValueError for anything else."""
    if not _B64URL.match(text):
        raise ValueError("not base64url")
    unpadded = text.rstrip("=")
    try:
        return base64.urlsafe_b64decode(unpadded + "=" * (-len(unpadded) % 4))
    except binascii.Error as exc:
        raise ValueError(str(exc)) from exc


def _bad(reason: str, message: str) -> LicenseError:
    return LicenseError(Refusal.BAD_REQUEST, reason, message)


def parse_kid(text: object) -> bytes:
    """One key id from a license request: base64url of 16 bytes, else `bad-key-id`."""
    if not isinstance(text, str):
        raise _bad("bad-key-id", f"a key id is a base64url string, not {text!r}")
    try:
        raw = b64url_decode(text)
    except ValueError as exc:
        raise _bad("bad-key-id", f"key id {text[:40]!r} is not base64url") from exc
    if len(raw) != KEY_ID_BYTES:
        raise _bad("bad-key-id", f"a key id is {KEY_ID_BYTES} bytes, not {len(raw)}")
    return raw


def parse_license_request(body: bytes) -> ClearKeyRequest:
    """The request a ClearKey CDM sent; `malformed-request`, `bad-key-id`, `too-many-kids`
    or `unsupported-session-type` (all bad requests) when it is not one."""
    try:
        message = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _bad("malformed-request", "the license request is not JSON") from exc
    if not isinstance(message, dict):
        raise _bad("malformed-request", "the license request is not a JSON object")
    kids = message.get("kids")
    if not isinstance(kids, list) or not kids:
        raise _bad("malformed-request", "the license request needs a non-empty list `kids`")
    if len(kids) > MAX_KIDS:
        raise _bad("too-many-kids", f"at most {MAX_KIDS} key ids per request")
    session_type = message.get("type", SESSION_TYPE)
    if session_type != SESSION_TYPE:
        raise _bad(
            "unsupported-session-type", f"only {SESSION_TYPE!r} sessions, not {session_type!r}"
        )
    return ClearKeyRequest(tuple(dict.fromkeys(parse_kid(kid) for kid in kids)))


def license_response(keys: Iterable[ContentKey]) -> bytes:
    """The JSON Web Key set a ClearKey CDM takes as its license."""
    return orjson.dumps(
        {
            "keys": [
                {"kty": "oct", "kid": b64url(key.key_id_bytes), "k": b64url(key.key)}
                for key in keys
            ],
            "type": SESSION_TYPE,
        }
    )
