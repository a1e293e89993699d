"""CTA-5004 Common Media Client Data: a strict parser and the mapping onto a player sample.

CMCD travels as a Structured Field dictionary (RFC 8941): `key=value` members joined by
commas; strings quoted, tokens bare, integers bare, booleans as a bare key (true) or
`?0`/`?1`. Players put it in the `CMCD=` query argument (URL-encoded) or split it over
the `CMCD-Object`, `CMCD-Request`, `CMCD-Session` and `CMCD-Status` headers. The bridge
also takes a `text/cmcd` body with one payload per line: a batch form of its own, after
CMCD v2's reporting to a collector, for relays that gather CMCD from many players.

Known keys are checked for type and range (a wrong one is refused with a reason); keys
the bridge does not know are ignored as the spec asks, and reported back and counted.
Parameters (`;x=...`) are not part of CMCD and are refused.

| CMCD key | sample field |
|---|---|
| `sid` (required) | session (pseudonymised to session_ref) |
| `cid` | content (default `unknown`) |
| `br` (video objects*) | bitrate_kbps, else 0: audio, manifests and keys are no rendition |
| `bl` | buffer_ms |
| `d` (video objects*, not `su`) | play_ms: a player fetches about a segment per segment played |
| `bs` | rebuffer_count = 1: the buffer ran dry since the previous request |
| `su` | play_ms = 0: start-up, seek or recovery is not steady playback |
| `ot` / `mtp` / `tb` | object_type / throughput_kbps / top_bitrate_kbps |
| v2 `bsd` / `msd` / `ts` / `sn` | rebuffer_ms / startup_ms / sampled_at / sample id |
| `com.liveward-viewer` | viewer (without it the session stands in for the viewer) |
| `com.liveward-cdn` / `-region` / `-error` | cdn (default `unknown`) / serving_region / error |

*`ot` is `v` or `av`, or absent. Without `ts`, sampled_at is when the bridge received it.

`dl`, `rtp`, `nor`, `nrr`, `pr`, `sf`, `st` and `v` are validated but have no field in
`QoETelemetrySample`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from services.bridge.samples import (
    MAX_BITRATE_KBPS,
    MAX_DURATION_MS,
    MAX_STARTUP_MS,
    MAX_THROUGHPUT_KBPS,
    Invalid,
    PlayerSample,
    SampleWindow,
    name,
    timestamp,
    token,
)

CMCD_HEADERS: Final = ("cmcd-object", "cmcd-request", "cmcd-session", "cmcd-status")
MAX_PAYLOAD_CHARS: Final = 8_192
MAX_STRING_CHARS: Final = 64  # the spec's limit for cid and sid
UNKNOWN: Final = "unknown"
_MAX_INT_DIGITS = 15  # RFC 8941 sf-integer


class Token(str):
    """An RFC 8941 token (bare word), as opposed to a quoted string."""

    __slots__ = ()


CmcdValue = int | float | bool | str | tuple[str, ...]

_LCALPHA = frozenset("abcdefghijklmnopqrstuvwxyz")
_KEY_CHARS = _LCALPHA | frozenset("0123456789_-.*")
_DIGITS = frozenset("0123456789")
_TCHAR = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ:/"
)
_TOKEN_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ*")


class CmcdSyntaxError(ValueError):
    """The payload is not a Structured Field dictionary."""


class _Scanner:
    """A cursor over one payload; every method consumes what it parses."""

    __slots__ = ("pos", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, what: str) -> CmcdSyntaxError:
        return CmcdSyntaxError(f"{what} at character {self.pos + 1}")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def key(self) -> str:
        start = self.pos
        if self.peek() not in _LCALPHA and self.peek() != "*":
            raise self.fail("expected a lowercase key")
        self.pos += 1
        while self.pos < len(self.text) and self.text[self.pos] in _KEY_CHARS:
            self.pos += 1
        return self.text[start : self.pos]

    def bare_item(self) -> int | float | bool | str:
        char = self.peek()
        if char == '"':
            return self.string()
        if char == "?":
            flag = self.text[self.pos + 1 : self.pos + 2]
            if flag not in ("0", "1"):
                raise self.fail("a boolean is ?0 or ?1")
            self.pos += 2
            return flag == "1"
        if char == "-" or char in _DIGITS:
            return self.number()
        if char in _TOKEN_START:
            start = self.pos
            self.pos += 1
            while self.pos < len(self.text) and self.text[self.pos] in _TCHAR:
                self.pos += 1
            return Token(self.text[start : self.pos])
        raise self.fail("expected a value")

    def string(self) -> str:
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            self.pos += 1
            if char == "\\":
                escaped = self.text[self.pos : self.pos + 1]
                if escaped not in ('"', "\\"):
                    raise self.fail('only \\" and \\\\ are escapes in a string')
                out.append(escaped)
                self.pos += 1
            elif char == '"':
                return "".join(out)
            elif " " <= char <= "~":
                out.append(char)
            else:
                raise self.fail("a string holds printable ASCII only")
        raise self.fail("unterminated string")

    def number(self) -> int | float:
        start = self.pos
        if self.peek() == "-":
            self.pos += 1
        digits_start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in _DIGITS:
            self.pos += 1
        whole = self.pos - digits_start
        if whole == 0:
            raise self.fail("expected digits")
        if self.peek() != ".":
            if whole > _MAX_INT_DIGITS:
                raise self.fail("an integer has at most 15 digits")
            return int(self.text[start : self.pos])
        self.pos += 1
        fraction_start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in _DIGITS:
            self.pos += 1
        fraction = self.pos - fraction_start
        if whole > 12 or not 1 <= fraction <= 3:
            raise self.fail("a decimal has at most 12 digits, a dot and 1 to 3 digits")
        return float(self.text[start : self.pos])

    def inner_list(self) -> tuple[str, ...]:
        self.pos += 1
        items: list[str] = []
        while True:
            while self.peek() == " ":
                self.pos += 1
            if self.peek() == ")":
                self.pos += 1
                return tuple(items)
            item = self.bare_item()
            if not isinstance(item, str):
                raise self.fail("CMCD lists hold strings or tokens only")
            items.append(item)
            if self.peek() not in (" ", ")"):
                raise self.fail("list items are separated by spaces")

    def skip_ows(self) -> None:
        while self.peek() in (" ", "\t"):
            self.pos += 1


def parse_payload(text: str, into: dict[str, CmcdValue] | None = None) -> dict[str, CmcdValue]:
    """The members of one CMCD payload (an RFC 8941 dictionary without parameters).

    CmcdSyntaxError on a syntax error or on a key seen twice (also across the headers
    merged `into` one dictionary): the spec never repeats a key, and a repeated one
    leaves what the player meant ambiguous.
    """
    members: dict[str, CmcdValue] = {} if into is None else into
    if len(text) > MAX_PAYLOAD_CHARS:
        raise CmcdSyntaxError(f"a payload is limited to {MAX_PAYLOAD_CHARS} characters")
    scan = _Scanner(text)
    scan.skip_ows()
    if not scan.peek():
        return members
    while True:
        key = scan.key()
        value: CmcdValue
        if scan.peek() == "=":
            scan.pos += 1
            value = scan.inner_list() if scan.peek() == "(" else scan.bare_item()
        else:
            value = True
        if scan.peek() == ";":
            raise scan.fail("CMCD has no parameters")
        if key in members:
            raise CmcdSyntaxError(f"key {key!r} appears twice")
        members[key] = value
        scan.skip_ows()
        if not scan.peek():
            return members
        if scan.peek() != ",":
            raise scan.fail("expected a comma between members")
        scan.pos += 1
        scan.skip_ows()
        if not scan.peek():
            raise scan.fail("trailing comma")


def parse_request(
    query_values: Iterable[str], header_values: Iterable[str]
) -> dict[str, CmcdValue]:
    """Every CMCD member of one request: the `CMCD=` query argument and the CMCD-* headers."""
    members: dict[str, CmcdValue] = {}
    for text in (*query_values, *header_values):
        parse_payload(text, members)
    return members


# The kind of every key the bridge understands: "int" (non-negative sf-integer),
# "bool", "string" (quoted, <= 64 chars), "name" (string or token), "decimal",
# or a frozenset of the tokens allowed.
_OBJECT_TYPES = frozenset({"m", "a", "v", "av", "i", "c", "tt", "k", "o"})
KEYS: Final[dict[str, str | frozenset[str]]] = {
    "br": "int",
    "bl": "int",
    "bs": "bool",
    "cid": "string",
    "d": "int",
    "dl": "int",
    "mtp": "int",
    "nor": "string",
    "nrr": "string",
    "ot": _OBJECT_TYPES,
    "pr": "decimal",
    "rtp": "int",
    "sf": frozenset({"d", "h", "s", "o"}),
    "sid": "string",
    "st": frozenset({"v", "l"}),
    "su": "bool",
    "tb": "int",
    "v": "int",
    # CMCD v2 (CTA-5004-A) keys the sample has a field for.
    "ts": "int",
    "msd": "int",
    "bsd": "int",
    "sn": "int",
    # The bridge's own custom keys (the spec asks for a hyphenated reverse-DNS prefix).
    "com.liveward-viewer": "string",
    "com.liveward-cdn": "name",
    "com.liveward-region": "name",
    "com.liveward-error": "name",
}
_MAX_STRING: Final = {"cid": MAX_STRING_CHARS, "sid": MAX_STRING_CHARS, "com.liveward-viewer": 128}
SUPPORTED_VERSIONS: Final = frozenset({1, 2})
_MEDIA_OBJECTS = frozenset({"v", "av"})


def check_members(members: dict[str, CmcdValue]) -> list[str]:
    """Check every known key's type and range (Invalid on the first bad one).

    Returns the unknown keys, sorted: ignored, as the spec asks, but reported.
    """
    unknown: list[str] = []
    for key, value in members.items():
        kind = KEYS.get(key)
        if kind is None:
            unknown.append(key)
        elif kind == "int":
            if type(value) is not int:
                raise Invalid(key, "wrong-type", f"CMCD {key} must be an integer")
            if value < 0:
                raise Invalid(key, "negative-value", f"CMCD {key} must not be negative")
        elif kind == "bool":
            if type(value) is not bool:
                raise Invalid(key, "wrong-type", f"CMCD {key} is a boolean: the bare key")
        elif kind == "string":
            if type(value) is not str:
                raise Invalid(key, "wrong-type", f"CMCD {key} must be a quoted string")
            limit = _MAX_STRING.get(key)
            if not value or (limit is not None and len(value) > limit):
                raise Invalid(key, "bad-length", f"CMCD {key} must have 1 to {limit} characters")
        elif kind == "name":
            if not isinstance(value, str):
                raise Invalid(key, "wrong-type", f"CMCD {key} must be a string or token")
        elif kind == "decimal":
            if type(value) not in (int, float):
                raise Invalid(key, "wrong-type", f"CMCD {key} must be a number")
            if value < 0:  # type: ignore[operator]
                raise Invalid(key, "negative-value", f"CMCD {key} must not be negative")
        elif type(value) is not Token or value not in kind:
            allowed = ", ".join(sorted(kind))
            raise Invalid(key, "bad-value", f"CMCD {key} must be one of the tokens {allowed}")
    version = members.get("v", 1)
    if version not in SUPPORTED_VERSIONS:
        raise Invalid("v", "unsupported-version", f"CMCD version {version} is not supported")
    return sorted(unknown)


def _bounded(members: dict[str, CmcdValue], key: str, maximum: int) -> int:
    value = members.get(key, 0)
    assert type(value) is int  # check_members made sure
    if value > maximum:
        raise Invalid(key, "out-of-range", f"CMCD {key} must be at most {maximum}")
    return value


def cmcd_sample(
    members: dict[str, CmcdValue], *, received_ms: int, window: SampleWindow
) -> tuple[PlayerSample, list[str]]:
    """The sample one CMCD payload describes, and its unknown keys (Invalid if unusable)."""
    unknown = check_members(members)
    session = members.get("sid")
    if session is None:
        raise Invalid("sid", "missing-field", "CMCD sid (the session id) is required")
    object_type = members.get("ot")
    media = object_type is None or object_type in _MEDIA_OBJECTS
    startup = members.get("su", False) is True
    viewer = members.get("com.liveward-viewer", session)
    region = members.get("com.liveward-region")
    error = members.get("com.liveward-error")
    startup_ms = members.get("msd")
    sequence = members.get("sn")
    stamp = members.get("ts")
    sample = PlayerSample(
        sample_id=None if sequence is None else str(sequence),
        viewer=str(viewer),
        session=str(session),
        content=name(str(members["cid"]), "cid", MAX_STRING_CHARS) if "cid" in members else UNKNOWN,
        cdn=token(str(members.get("com.liveward-cdn", UNKNOWN)), "com.liveward-cdn"),
        serving_region=None if region is None else token(str(region), "com.liveward-region"),
        sampled_at=received_ms if stamp is None else timestamp(stamp, "ts", window),
        bitrate_kbps=_bounded(members, "br", MAX_BITRATE_KBPS) if media else 0,
        buffer_ms=_bounded(members, "bl", MAX_DURATION_MS),
        play_ms=_bounded(members, "d", MAX_DURATION_MS) if media and not startup else 0,
        rebuffer_count=1 if members.get("bs", False) is True else 0,
        rebuffer_ms=_bounded(members, "bsd", MAX_DURATION_MS),
        startup_ms=None if startup_ms is None else _bounded(members, "msd", MAX_STARTUP_MS),
        exited_before_start=False,
        error_code=None if error is None else token(str(error), "com.liveward-error"),
        object_type=None if object_type is None else str(object_type),
        throughput_kbps=_bounded(members, "mtp", MAX_THROUGHPUT_KBPS) if "mtp" in members else None,
        top_bitrate_kbps=_bounded(members, "tb", MAX_BITRATE_KBPS) if "tb" in members else None,
    )
    return sample, unknown
