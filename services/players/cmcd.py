"""CTA-5004 CMCD payloads as players write them: an RFC 8941 dictionary, keys sorted. Pure."""

from __future__ import annotations

from collections.abc import Mapping


class Token(str):
    """A bare RFC 8941 token (`ot=av`), as opposed to a quoted string."""

    __slots__ = ()


CmcdValue = bool | int | str


def encode_cmcd(members: Mapping[str, CmcdValue]) -> str:
    """`key=value` members joined by commas: true booleans are the bare key, false ones are
    left out, strings quoted, tokens and integers bare."""
    parts = []
    for key in sorted(members):
        value = members[key]
        if value is True:
            parts.append(key)
        elif value is False:
            continue
        elif isinstance(value, Token | int):
            parts.append(f"{key}={value}")
        else:
            escaped = value.replace("\\", "\\\\").replace('"', '\\"')
            parts.append(f'{key}="{escaped}"')
    return ",".join(parts)


def round_to(value: float, step: int) -> int:
    """CMCD rounds buffer length to 100 ms and throughput to 100 kbps."""
    return round(value / step) * step
