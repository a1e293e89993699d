"""What one `POST /v1/telemetry` carries: JSON, CMCD lines, or CMCD in query and headers.

Pure: bytes, header values and the clock in; samples and per-item rejections out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

from services.bridge.cmcd import CmcdSyntaxError, cmcd_sample, parse_payload, parse_request
from services.bridge.errors import RequestRejected
from services.bridge.samples import (
    Invalid,
    PlayerSample,
    Rejection,
    SampleWindow,
    check_unique,
    parse_json_batch,
)

JSON_TYPES = frozenset({"application/json", "text/plain", ""})
CMCD_TYPE = "text/cmcd"


class TelemetryRequest(NamedTuple):
    """The parts of an HTTP request the bridge reads."""

    body: bytes
    content_type: str
    cmcd_query: Sequence[str]  # every `CMCD=` query argument, decoded
    cmcd_headers: Sequence[str]  # every CMCD-Object/-Request/-Session/-Status value


class ReadRequest(NamedTuple):
    """Samples to produce, items refused, unknown CMCD keys ignored, and the form used."""

    samples: list[PlayerSample]
    rejected: list[Rejection]
    ignored_keys: list[str]
    form: str  # "json", "cmcd" (query/headers) or "cmcd-lines"


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def read_request(
    request: TelemetryRequest, *, received_ms: int, window: SampleWindow, max_samples: int
) -> ReadRequest:
    """Samples and rejections of one request; RequestRejected when it is unusable as a whole.

    `text/plain` is read as JSON: `navigator.sendBeacon` sends strings with it, and it
    spares browsers a CORS preflight.
    """
    has_cmcd = bool(request.cmcd_query) or bool(request.cmcd_headers)
    if not request.body:
        if not has_cmcd:
            raise RequestRejected(
                "empty-request", "send a JSON or text/cmcd body, or CMCD in the query or headers"
            )
        return _read_cmcd(request, received_ms, window)
    if has_cmcd:
        raise RequestRejected(
            "ambiguous-request", "send either a body or CMCD in the query/headers, not both"
        )
    kind = media_type(request.content_type)
    if kind in JSON_TYPES:
        batch = parse_json_batch(request.body, window, max_samples=max_samples)
        return ReadRequest(batch.samples, batch.rejected, [], "json")
    if kind == CMCD_TYPE:
        return _read_cmcd_lines(request.body, received_ms, window, max_samples)
    raise RequestRejected(
        "unsupported-media-type",
        f"{kind[:64]!r} is not application/json, text/plain or text/cmcd",
        status=415,
    )


def _read_cmcd(request: TelemetryRequest, received_ms: int, window: SampleWindow) -> ReadRequest:
    if len(request.cmcd_query) > 1:
        raise RequestRejected("malformed-cmcd", "the CMCD query argument appears twice")
    try:
        members = parse_request(request.cmcd_query, request.cmcd_headers)
    except CmcdSyntaxError as exc:
        raise RequestRejected("malformed-cmcd", f"CMCD does not parse: {exc}") from exc
    if not members:
        raise RequestRejected("empty-request", "the CMCD payload is empty")
    try:
        sample, unknown = cmcd_sample(members, received_ms=received_ms, window=window)
    except Invalid as problem:
        return ReadRequest([], [_rejection(0, members, problem)], [], "cmcd")
    return ReadRequest([sample], [], unknown, "cmcd")


def _rejection(index: int, members: Mapping[str, object], problem: Invalid) -> Rejection:
    sequence = members.get("sn")
    sample_id = str(sequence) if type(sequence) is int else None
    return Rejection(index, sample_id, problem.field, problem.reason, problem.message)


def _read_cmcd_lines(
    body: bytes, received_ms: int, window: SampleWindow, max_samples: int
) -> ReadRequest:
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError as exc:
        raise RequestRejected("malformed-cmcd", "a text/cmcd body is ASCII") from exc
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise RequestRejected("empty-batch", "the body holds no CMCD payloads")
    if len(lines) > max_samples:
        raise RequestRejected(
            "too-many-samples",
            f"{len(lines)} payloads; a request may carry at most {max_samples}",
            status=413,
        )
    valid: list[tuple[int, PlayerSample]] = []
    rejected: list[Rejection] = []
    ignored: set[str] = set()
    for index, line in enumerate(lines):
        try:
            members = parse_payload(line)
        except CmcdSyntaxError as exc:
            rejected.append(Rejection(index, None, None, "malformed-cmcd", str(exc)))
            continue
        try:
            sample, unknown = cmcd_sample(members, received_ms=received_ms, window=window)
        except Invalid as problem:
            rejected.append(_rejection(index, members, problem))
            continue
        ignored.update(unknown)
        valid.append((index, sample))
    samples = check_unique(valid, rejected)
    return ReadRequest(samples, sorted(rejected), sorted(ignored), "cmcd-lines")
