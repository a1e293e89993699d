"""Thousands of malformed requests, mixed with good samples, through the app in process.

Every answer is a 202 or a 4xx with a reason (never a 500), the bridge keeps serving,
every sample it accepted is in the log, and every well-formed sample was accepted.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.bridge.cmcd import KEYS
from tests.unit.services.bridge.conftest import NOW_MS, SE_IP, Harness, sample

URL = "/v1/telemetry"

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=10,
)
fields = st.sampled_from([*sorted(sample().keys()), "startup_ms", "error", "exited_before_start"])
bad_numbers = st.sampled_from([-1, -(2**40), 2**31, 2**63, 1.5, "7", True, NOW_MS * 10, 0])


@st.composite
def broken_samples(draw: st.DrawFn) -> Any:
    """A valid sample with one to three things wrong (or something that is no sample)."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    item: dict[str, Any] = sample(id=draw(st.text(max_size=8).map(lambda t: f"bad-{t}")))
    for _ in range(draw(st.integers(1, 3))):
        field = draw(fields)
        action = draw(st.integers(0, 3))
        if action == 0:
            item.pop(field, None)
        elif action == 1:
            item[field] = draw(json_values)
        elif action == 2:
            item[field] = draw(bad_numbers)
        else:
            item[draw(st.text(min_size=1, max_size=8))] = draw(json_values)
    return item


cmcd_values = st.one_of(
    st.integers(-5, 10**16).map(str),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=10).map(
        lambda t: '"' + t.replace("\\", "").replace('"', "") + '"'
    ),
    st.sampled_from(["?1", "?0", "v", "av", "x", "1.5", '("a" b)', "", '"unterminated']),
)
cmcd_payloads = st.lists(
    st.tuples(st.sampled_from(sorted(KEYS)) | st.text(max_size=6), st.none() | cmcd_values),
    max_size=6,
).map(lambda members: ",".join(k if v is None else f"{k}={v}" for k, v in members))


@st.composite
def requests(draw: st.DrawFn, good: list[dict[str, Any]]) -> dict[str, Any]:
    """Keyword arguments for one POST; well-formed samples are recorded in `good`."""
    kind = draw(st.integers(0, 5))
    if kind == 0:
        content_type = draw(
            st.sampled_from(["application/json", "text/cmcd", "text/plain", "image/png", ""])
        )
        return {"content": draw(st.binary(max_size=200)), "headers": {"Content-Type": content_type}}
    if kind == 1:
        return {"content": json.dumps(draw(json_values)).encode()}
    if kind == 2:
        return {"params": {"CMCD": draw(cmcd_payloads)}}
    if kind == 3:
        header = draw(
            st.sampled_from(["CMCD-Object", "CMCD-Request", "CMCD-Session", "CMCD-Status"])
        )
        return {"headers": {header: quote(draw(cmcd_payloads), safe='=,"?()')}}
    items: list[Any] = []
    for _ in range(draw(st.integers(1, 8))):
        if draw(st.booleans()):
            item = sample(id=f"good-{len(good)}", session=f"s-{len(good) % 3}")
            good.append(item)
            items.append(item)
        else:
            items.append(draw(broken_samples()))
    return {"content": json.dumps({"samples": items}).encode()}


async def _post_all(
    app: Any, client_ip: str, batch: list[dict[str, Any]]
) -> list[tuple[int, dict[str, Any]]]:
    """Every request in order through an in-process ASGI client (no sockets, no threads)."""
    transport = httpx.ASGITransport(app=app, client=(client_ip, 40_000))
    async with httpx.AsyncClient(transport=transport, base_url="http://bridge") as client:
        answers = []
        for kwargs in batch:
            response = await client.post(URL, **kwargs)
            answers.append((response.status_code, response.json()))
        return answers


@settings(
    max_examples=100,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_malformed_requests_never_break_the_bridge_or_lose_a_good_sample(
    make_bridge: Callable[..., Harness], data: st.DataObject
) -> None:
    h = make_bridge(rate_limit_samples_per_s=1e9, rate_limit_burst=1e9)
    good: list[dict[str, Any]] = []
    batch = [data.draw(requests(good)) for _ in range(data.draw(st.integers(10, 30)))]
    batch.append({"json": {"samples": [sample(id="after")]}})

    answers = asyncio.run(_post_all(h.client.app, SE_IP, batch))

    accepted = 0
    for status, body in answers:
        assert status in (202, 400, 413, 415), body
        if status == 202:
            accepted += body["accepted"]
            assert body["accepted"] > 0
        else:
            assert isinstance(body["error"], str) and body["message"]
    assert answers[-1][0] == 202  # still serving
    assert len(h.decoded()) == accepted
    pseudonyms = h.bridge.pseudonyms(NOW_MS)
    stored = {record["event_id"] for record in h.decoded()}
    for item in good:
        assert pseudonyms.sample_event_id(item["session"], item["id"]) in stored
