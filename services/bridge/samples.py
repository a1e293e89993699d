"""Player samples as the bridge receives them, and the JSON batch format, validated by hand.

The JSON format (`POST /v1/telemetry`, `Content-Type: application/json` or `text/plain`):

    {"samples": [{"id": "s-17", "viewer": "viewer-123", "session": "3f2c…", "content":
      "sports/final", "cdn": "cdn-a", "sampled_at": 1714557600000, "bitrate_kbps": 4500,
      "buffer_ms": 12000, "play_ms": 1000, "rebuffer_count": 1, "rebuffer_ms": 250}]}

| field | type | |
|---|---|---|
| `viewer`, `session` | string, 1-128 printable chars | required; pseudonymised at the edge |
| `content` | name, 1-256 chars | required |
| `cdn` | name, 1-64 chars | required |
| `sampled_at` | integer, epoch ms | required; at most 24 h old, 5 min ahead |
| `id` | string, 1-64 chars | optional; unique per session; makes resends idempotent |
| `bitrate_kbps` | integer 0-1,000,000 | default 0 (no rendition playing) |
| `buffer_ms` | integer 0-3,600,000 | default 0 |
| `play_ms`, `rebuffer_ms` | integer 0-3,600,000 | default 0; since the previous sample |
| `rebuffer_count` | integer 0-100,000 | default 0; stalls since the previous sample |
| `startup_ms` | integer 0-600,000 or null | video start time, once per session |
| `exited_before_start` | boolean | default false; then no startup_ms, no play_ms |
| `error` | name, 1-64 chars, or null | player error code |
| `serving_region` | name, 1-64 chars | default: the bridge's region |
| `throughput_kbps` | integer 0-100,000,000 or null | throughput the player measured |
| `top_bitrate_kbps` | integer 0-1,000,000 or null | highest rendition it may switch to |

A name is `[A-Za-z0-9][A-Za-z0-9._:/+=~-]*` and holds no IP address. Unknown fields are
refused (a typo must not silently become a default).

Validation is a hand-written function rather than a pydantic model: it runs for every
sample on the ingest hot path (pydantic costs ~10x more per sample), and it stops at the
first problem of a sample with a field, a reason code and a message the player's
developer can act on. Integers must be JSON integers (no 12.0, no booleans).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import ip_address
from operator import itemgetter
from typing import Any, NamedTuple

import orjson

from services.bridge.errors import RequestRejected

# Ranges a real player stays far inside; beyond them a value is a bug, not a measurement.
MAX_BITRATE_KBPS = 1_000_000
# What a player measures, not a rendition: a fast LAN (or loopback, where a real segment
# arrives in a millisecond) measures gigabits, so the bound is 100 Gbit/s.
MAX_THROUGHPUT_KBPS = 100_000_000
MAX_DURATION_MS = 3_600_000
MAX_STARTUP_MS = 600_000
MAX_REBUFFER_COUNT = 100_000
MAX_ID_CHARS = 128
MAX_SAMPLE_ID_CHARS = 64
MAX_CONTENT_CHARS = 256
MAX_TOKEN_CHARS = 64

# Content ids, CDN names, regions and error codes go into analytics as they are: a name
# alphabet keeps free text (URLs with tokens in them, e-mail addresses) out, and a value
# holding an IP address is refused, since addresses stop at the edge.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+=~-]*")
_IPV4 = re.compile(r"(?<![0-9.])\d{1,3}(?:\.\d{1,3}){3}(?![0-9.])")
_IPV6_CANDIDATE = re.compile(r"[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*")

FIELDS = frozenset(
    {
        "id",
        "viewer",
        "session",
        "content",
        "cdn",
        "serving_region",
        "sampled_at",
        "bitrate_kbps",
        "buffer_ms",
        "play_ms",
        "rebuffer_count",
        "rebuffer_ms",
        "startup_ms",
        "exited_before_start",
        "error",
        "throughput_kbps",
        "top_bitrate_kbps",
    }
)


class PlayerSample(NamedTuple):
    """One validated sample with the player's raw ids, before pseudonymisation.

    Lives only inside the bridge: `viewer` and `session` never leave it as they are.
    """

    sample_id: str | None
    viewer: str
    session: str
    content: str
    cdn: str
    serving_region: str | None
    sampled_at: int
    bitrate_kbps: int
    buffer_ms: int
    play_ms: int
    rebuffer_count: int
    rebuffer_ms: int
    startup_ms: int | None
    exited_before_start: bool
    error_code: str | None
    object_type: str | None = None
    throughput_kbps: int | None = None
    top_bitrate_kbps: int | None = None


class Rejection(NamedTuple):
    """Why one item of a batch was refused: where it is, which field, a reason code."""

    item: int  # position in the batch, from 0
    sample_id: str | None
    field: str | None
    reason: str
    message: str

    def as_json(self) -> dict[str, object]:
        answer: dict[str, object] = {"index": self.item, "reason": self.reason}
        if self.sample_id is not None:
            answer["id"] = self.sample_id
        if self.field is not None:
            answer["field"] = self.field
        answer["message"] = self.message
        return answer


@dataclass(frozen=True, slots=True)
class SampleWindow:
    """Which `sampled_at` stamps are believable now: [oldest_ms, newest_ms]."""

    oldest_ms: int
    newest_ms: int

    @classmethod
    def around(cls, now_ms: int, *, max_age_s: int, max_skew_s: int) -> SampleWindow:
        return cls(now_ms - max_age_s * 1000, now_ms + max_skew_s * 1000)


class Invalid(Exception):
    """One field of one sample is wrong (internal: becomes a Rejection)."""

    def __init__(self, field: str | None, reason: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.reason = reason
        self.message = message


def text(value: object, field: str, max_chars: int) -> str:
    """A printable, non-empty string of at most max_chars characters."""
    if type(value) is not str:
        raise Invalid(field, "wrong-type", f"{field} must be a string")
    if not 0 < len(value) <= max_chars:
        raise Invalid(field, "bad-length", f"{field} must have 1 to {max_chars} characters")
    if not value.isprintable():
        raise Invalid(field, "bad-characters", f"{field} must not contain control characters")
    return value


def holds_address(value: str) -> bool:
    """Whether an IPv4 or IPv6 address is written somewhere inside value."""
    if _IPV4.search(value) is not None:
        return True
    for candidate in _IPV6_CANDIDATE.findall(value):
        try:
            ip_address(candidate.strip(":.") if "::" not in candidate else candidate)
        except ValueError:
            continue
        return True
    return False


def name(value: object, field: str, max_chars: int = MAX_TOKEN_CHARS) -> str:
    """A name from a restricted alphabet without an address in it (content, CDN, ...)."""
    if type(value) is not str:
        raise Invalid(field, "wrong-type", f"{field} must be a string")
    if not 0 < len(value) <= max_chars:
        raise Invalid(field, "bad-length", f"{field} must have 1 to {max_chars} characters")
    if _NAME.fullmatch(value) is None:
        raise Invalid(field, "bad-characters", f"{field} may hold only A-Z a-z 0-9 . _ : / + = ~ -")
    if holds_address(value):
        raise Invalid(field, "address-in-field", f"{field} must not hold an IP address")
    return value


def token(value: object, field: str) -> str:
    """A short name (CDN, region, error code)."""
    return name(value, field, MAX_TOKEN_CHARS)


def counter(value: object, field: str, maximum: int) -> int:
    """A non-negative integer up to maximum (booleans and floats are not integers)."""
    if type(value) is not int:
        raise Invalid(field, "wrong-type", f"{field} must be an integer")
    if value < 0:
        raise Invalid(field, "negative-value", f"{field} must not be negative")
    if value > maximum:
        raise Invalid(field, "out-of-range", f"{field} must be at most {maximum}")
    return value


def timestamp(value: object, field: str, window: SampleWindow) -> int:
    """Epoch milliseconds inside the window."""
    if type(value) is not int:
        raise Invalid(field, "wrong-type", f"{field} must be an integer (epoch ms)")
    if value > window.newest_ms:
        raise Invalid(field, "timestamp-in-future", f"{field} is ahead of the bridge's clock")
    if value < window.oldest_ms:
        raise Invalid(field, "timestamp-too-old", f"{field} is older than the bridge accepts")
    return value


def check_consistency(sample: PlayerSample) -> None:
    """Facts one sample cannot state together."""
    if sample.exited_before_start and (sample.startup_ms is not None or sample.play_ms > 0):
        raise Invalid(
            "exited_before_start",
            "inconsistent-sample",
            "a viewer who left before the first frame has no startup_ms and no play_ms",
        )


# The fields of an ordinary sample: one with exactly these takes the fast path below,
# reading them all with one C call.
_FAST_ORDER = (
    "id",
    "viewer",
    "session",
    "content",
    "cdn",
    "sampled_at",
    "bitrate_kbps",
    "buffer_ms",
    "play_ms",
    "rebuffer_count",
    "rebuffer_ms",
)
_FAST_FIELDS = frozenset(_FAST_ORDER)
_FAST_FIELDS_NO_ID = _FAST_FIELDS - {"id"}
_fast_values = itemgetter(*_FAST_ORDER)
_fast_values_no_id = itemgetter(*_FAST_ORDER[1:])
# Content ids and CDN names that passed their checks: a batch names a handful, thousands
# of times over.
_SEEN_NAMES: set[str] = set()
_MAX_SEEN_NAMES = 16_384
_new_sample = PlayerSample._make


def check_json_sample(item: Any, window: SampleWindow) -> PlayerSample:
    """One JSON sample, validated; raises Invalid at its first problem.

    An ordinary sample that is entirely right passes one chain of cheap checks; anything
    else (optional fields, any problem) takes `explain_json_sample`, which checks field by
    field and names the first problem. The fast path accepts nothing the slow one refuses
    (a property test holds them to that).
    """
    values: tuple[Any, ...] | None = None
    if type(item) is dict:
        if len(item) == 11 and item.keys() == _FAST_FIELDS:
            values = _fast_values(item)
        elif len(item) == 10 and item.keys() == _FAST_FIELDS_NO_ID:
            values = (None, *_fast_values_no_id(item))
    if values is not None:
        (
            sample_id, viewer, session, content, cdn, at,
            bitrate, buffer, play, stalls, stalled,
        ) = values  # fmt: skip
        if (
            type(viewer) is str
            and 0 < len(viewer) <= MAX_ID_CHARS
            and viewer.isprintable()
            and type(session) is str
            and 0 < len(session) <= MAX_ID_CHARS
            and session.isprintable()
            and type(content) is str
            and content in _SEEN_NAMES
            and len(content) <= MAX_CONTENT_CHARS
            and type(cdn) is str
            and cdn in _SEEN_NAMES
            and len(cdn) <= MAX_TOKEN_CHARS
            and type(at) is int
            and window.oldest_ms <= at <= window.newest_ms
            and type(bitrate) is int
            and 0 <= bitrate <= MAX_BITRATE_KBPS
            and type(buffer) is int
            and 0 <= buffer <= MAX_DURATION_MS
            and type(play) is int
            and 0 <= play <= MAX_DURATION_MS
            and type(stalls) is int
            and 0 <= stalls <= MAX_REBUFFER_COUNT
            and type(stalled) is int
            and 0 <= stalled <= MAX_DURATION_MS
            and (
                sample_id is None
                or (
                    type(sample_id) is str
                    and 0 < len(sample_id) <= MAX_SAMPLE_ID_CHARS
                    and sample_id.isprintable()
                )
            )
        ):
            return _new_sample(
                (sample_id, viewer, session, content, cdn, None, at, bitrate, buffer, play,
                 stalls, stalled, None, False, None, None, None, None)
            )  # fmt: skip
    sample = explain_json_sample(item, window)
    if len(_SEEN_NAMES) < _MAX_SEEN_NAMES:
        _SEEN_NAMES.add(sample.content)
        _SEEN_NAMES.add(sample.cdn)
    return sample


def explain_json_sample(item: Any, window: SampleWindow) -> PlayerSample:
    """One JSON sample checked field by field; Invalid names its first problem."""
    if type(item) is not dict:
        raise Invalid(None, "not-an-object", "a sample must be a JSON object")
    if not item.keys() <= FIELDS:
        unknown = sorted(item.keys() - FIELDS)[0]
        raise Invalid(unknown[:64], "unknown-field", f"{unknown[:64]!r} is not a sample field")
    get = item.get
    sample_id = get("id")
    if sample_id is not None:
        text(sample_id, "id", MAX_SAMPLE_ID_CHARS)
    for required in ("viewer", "session", "content", "cdn", "sampled_at"):
        if required not in item:
            raise Invalid(required, "missing-field", f"{required} is required")
    serving_region = get("serving_region")
    startup_ms = get("startup_ms")
    error_code = get("error")
    throughput = get("throughput_kbps")
    top_bitrate = get("top_bitrate_kbps")
    exited = get("exited_before_start", False)
    if type(exited) is not bool:
        raise Invalid("exited_before_start", "wrong-type", "exited_before_start must be a boolean")
    sample = PlayerSample(
        sample_id,
        text(item["viewer"], "viewer", MAX_ID_CHARS),
        text(item["session"], "session", MAX_ID_CHARS),
        name(item["content"], "content", MAX_CONTENT_CHARS),
        token(item["cdn"], "cdn"),
        None if serving_region is None else token(serving_region, "serving_region"),
        timestamp(item["sampled_at"], "sampled_at", window),
        counter(get("bitrate_kbps", 0), "bitrate_kbps", MAX_BITRATE_KBPS),
        counter(get("buffer_ms", 0), "buffer_ms", MAX_DURATION_MS),
        counter(get("play_ms", 0), "play_ms", MAX_DURATION_MS),
        counter(get("rebuffer_count", 0), "rebuffer_count", MAX_REBUFFER_COUNT),
        counter(get("rebuffer_ms", 0), "rebuffer_ms", MAX_DURATION_MS),
        None if startup_ms is None else counter(startup_ms, "startup_ms", MAX_STARTUP_MS),
        exited,
        None if error_code is None else token(error_code, "error"),
        None,
        None if throughput is None else counter(throughput, "throughput_kbps", MAX_THROUGHPUT_KBPS),
        None if top_bitrate is None else counter(top_bitrate, "top_bitrate_kbps", MAX_BITRATE_KBPS),
    )
    if exited:
        check_consistency(sample)
    return sample


class CheckedBatch(NamedTuple):
    """A batch after validation: the samples to produce and the items refused."""

    samples: list[PlayerSample]
    rejected: list[Rejection]


def check_unique(
    samples: list[tuple[int, PlayerSample]], rejected: list[Rejection]
) -> list[PlayerSample]:
    """Keep the first of samples sharing (session, id); refuse the later ones."""
    seen: set[tuple[str, str]] = set()
    kept: list[PlayerSample] = []
    for index, sample in samples:
        if sample.sample_id is not None:
            identity = (sample.session, sample.sample_id)
            if identity in seen:
                rejected.append(
                    Rejection(
                        index,
                        sample.sample_id,
                        "id",
                        "duplicate-sample-id",
                        "an earlier sample of this batch and session has this id",
                    )
                )
                continue
            seen.add(identity)
        kept.append(sample)
    return kept


def parse_json_batch(body: bytes, window: SampleWindow, *, max_samples: int) -> CheckedBatch:
    """A JSON batch: its valid samples and a Rejection per invalid one, in request order.

    RequestRejected when the body itself is unusable: not JSON (`malformed-json`), not
    `{"samples": [...]}` (`malformed-batch`), no samples (`empty-batch`), more than
    max_samples (`too-many-samples`, 413).
    """
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestRejected("malformed-json", f"the body is not JSON: {exc}") from exc
    if type(document) is not dict or type(document.get("samples")) is not list:
        raise RequestRejected("malformed-batch", 'the body must be {"samples": [...]}')
    if len(document) != 1:
        extra = sorted(k for k in document if k != "samples")[0]
        raise RequestRejected("malformed-batch", f"unknown top-level field {extra[:64]!r}")
    items: list[Any] = document["samples"]
    if not items:
        raise RequestRejected("empty-batch", "the batch holds no samples")
    if len(items) > max_samples:
        raise RequestRejected(
            "too-many-samples",
            f"{len(items)} samples; a request may carry at most {max_samples}",
            status=413,
        )
    valid: list[tuple[int, PlayerSample]] = []
    rejected: list[Rejection] = []
    with_ids = False
    for index, item in enumerate(items):
        try:
            sample = check_json_sample(item, window)
        except Invalid as problem:
            sample_id = item.get("id") if type(item) is dict else None
            rejected.append(
                Rejection(
                    index,
                    sample_id[:MAX_SAMPLE_ID_CHARS] if type(sample_id) is str else None,
                    problem.field,
                    problem.reason,
                    problem.message,
                )
            )
            continue
        with_ids = with_ids or sample.sample_id is not None
        valid.append((index, sample))
    if with_ids:
        return CheckedBatch(check_unique(valid, rejected), sorted(rejected))
    return CheckedBatch([sample for _, sample in valid], rejected)
