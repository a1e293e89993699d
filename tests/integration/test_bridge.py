"""The telemetry bridge as a real process on the real broker, over HTTP.

A mixed run (good and bad JSON items, CMCD in the query, the headers and text/cmcd
lines, malformed and oversized bodies) goes to `liveward serve bridge`; then the test
reads its topic back and finds every well-formed sample there exactly once, and no raw
viewer id, session id or address in any record. A flood from one client is throttled
with 429, and a bridge whose Kafka is unreachable answers 503 with Retry-After.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import NewTopic

from infra.processes import ManagedProcess, wait_until
from liveward.settings import AuthSettings, KafkaSettings, ServiceSettings, Settings
from services.bridge.epochs import KeyringFile
from services.bridge.pseudonyms import EpochPseudonyms
from services.bridge.settings import BridgeSettings, bridge_env
from streams.codec import default_codec
from streams.consumer import consumer_config
from streams.meta import now_ms
from streams.partitioning import partition_of
from streams.telemetry import decode_block
from streams.topics import admin_client
from tests.fixtures.geo import write_geo_databases

URL = "/v1/telemetry"
SE_IP, US_IP, GB_IP = "89.160.20.112", "216.160.83.56", "81.2.69.160"


@dataclass(frozen=True)
class Bridge:
    settings: Settings
    url: str
    topic: str
    keyring: Path
    process: ManagedProcess


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _start_bridge(
    settings: Settings, bridge: BridgeSettings, name: str, port: int
) -> ManagedProcess:
    process = ManagedProcess(
        name=name,
        pid_file=settings.state_dir / "pids" / f"test-{name}.pid",
        log_file=settings.log_dir / f"test-{name}.log",
    )
    process.start(
        [sys.executable, "-m", "liveward.cli", "serve", "bridge", "--port", str(port)],
        env={**os.environ, **settings.as_env(), **bridge_env(bridge)},
    )
    url = f"http://127.0.0.1:{port}"
    ready = wait_until(partial(_healthy, url), timeout=60, interval=0.2)
    assert ready, f"{name} never became ready:\n{process.log_tail(40)}"
    return process


def _edge_settings(base: Settings, files: Path, port: int) -> Settings:
    geo = write_geo_databases(files / "geo")
    return base.model_copy(
        update={
            "services": ServiceSettings(bridge_port=port),
            "auth": AuthSettings(
                geo_city_db=geo.city,
                geo_asn_db=geo.asn,
                geo_anonymous_db=geo.anonymous,
                trusted_proxies=("127.0.0.1/32",),
            ),
        }
    )


@pytest.fixture(scope="module")
def bridge(
    kafka_cluster: Settings, port_offset: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Bridge]:
    """One bridge process writing to a topic of this module's own (6 partitions)."""
    files = tmp_path_factory.mktemp("bridge")
    port = 18083 + port_offset
    settings = _edge_settings(kafka_cluster, files, port)
    topic = f"it.qoe.telemetry-{uuid.uuid4().hex[:12]}"
    admin = admin_client(settings)  # held: a collected client cancels its futures
    admin.create_topics([NewTopic(topic, 6, 1)])[topic].result()
    config = BridgeSettings(
        topic=topic,
        keyring_file=files / "keys.json",
        max_samples=100,
        rate_limit_samples_per_s=200,
        rate_limit_burst=1_000,
    )
    process = _start_bridge(settings, config, "bridge", port)
    try:
        yield Bridge(
            settings, f"http://127.0.0.1:{port}", topic, config.keyring_path(settings), process
        )
    finally:
        process.stop()
    assert "Traceback" not in process.log_tail(200), process.log_tail(60)


def _read_topic(settings: Settings, topic: str, expected: int, timeout: float = 30.0) -> list[Any]:
    """Every record of topic, waiting until records holding at least `expected` samples
    arrived (then 1 s more)."""
    consumer = Consumer(consumer_config(settings, f"it-bridge-{uuid.uuid4().hex[:8]}"))
    consumer.assign([TopicPartition(topic, p, 0) for p in range(6)])
    records: list[Any] = []
    samples = 0
    deadline = time.monotonic() + timeout
    quiet_until: float | None = None
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                records.append(message)
                samples += len(decode_block(default_codec(), message.value() or b""))
                continue
            if samples >= expected:
                # Anything beyond what was accepted would show up now: wait a little.
                quiet_until = quiet_until or time.monotonic() + 1.0
                if time.monotonic() > quiet_until:
                    break
    finally:
        consumer.close()
    return records


def _sample(n: int, run: str, **changes: Any) -> dict[str, Any]:
    item = {
        "id": f"{run}-{n}",
        "viewer": f"viewer-{run}-{n % 3}",
        "session": f"session-{run}-{n % 5}",
        "content": "sports/final",
        "cdn": "cdn-a",
        "sampled_at": now_ms() - 500,
        "bitrate_kbps": 4_500,
        "buffer_ms": 12_000,
        "play_ms": 1_000,
        "rebuffer_count": 0,
        "rebuffer_ms": 0,
        **changes,
    }
    return {k: v for k, v in item.items() if v is not None}


def test_a_mixed_run_puts_every_well_formed_sample_in_kafka_and_nothing_else(
    bridge: Bridge,
) -> None:
    run = uuid.uuid4().hex[:8]
    proxy = {"X-Forwarded-For": SE_IP, "Origin": "https://player.example"}
    good_ids: list[tuple[str, str]] = []  # (session, sample id) of every well-formed sample
    bad_ids: list[tuple[str, str]] = []
    accepted = 0

    def expect(response: httpx.Response, status: int, reason: str | None = None) -> None:
        nonlocal accepted
        assert response.status_code == status, response.text
        assert response.headers["access-control-allow-origin"] == "*"
        body = response.json()
        if status == 202:
            accepted += body["accepted"]
        else:
            assert body["error"] == reason

    with httpx.Client(base_url=bridge.url, timeout=15.0, headers=proxy) as client:
        for batch in range(5):
            items = []
            for n in range(batch * 20, batch * 20 + 20):
                identity = (f"session-{run}-{n % 5}", f"{run}-{n}")
                if n % 4 == 3:
                    items.append(_sample(n, run, buffer_ms=-1))
                    bad_ids.append(identity)
                elif n % 7 == 6:
                    items.append(_sample(n, run, sampled_at=now_ms() + 86_400_000))
                    bad_ids.append(identity)
                else:
                    items.append(_sample(n, run))
                    good_ids.append(identity)
                    last_good = n
            items.append(_sample(last_good, run))  # a duplicate id: refused, listed
            response = client.post(URL, json={"samples": items})
            expect(response, 202)
            assert {r["reason"] for r in response.json()["rejected"]} == {
                "negative-value",
                "timestamp-in-future",
                "duplicate-sample-id",
            }
        cmcd = f'br=3200,bl=21300,cid="sports/final",d=4004,ot=v,sid="cmcd-{run}",sn=1'
        expect(client.post(f"{URL}?CMCD={quote(cmcd)}"), 202)
        expect(
            client.post(
                URL,
                headers={
                    "CMCD-Object": "br=800,d=2000,ot=v",
                    "CMCD-Request": "bl=5000,su,com.example-x=1",
                    "CMCD-Session": f'sid="cmcd-{run}",sn=2',
                    "CMCD-Status": "bs",
                },
            ),
            202,
        )
        lines = "\n".join(
            [f'br=900,sid="cmcd-{run}",sn={n}' for n in range(3, 8)] + ["br=1,sid=unquoted"]
        )
        expect(client.post(URL, content=lines, headers={"Content-Type": "text/cmcd"}), 202)
        expect(
            client.post(URL, json={"samples": [_sample(0, run, viewer=None)]}),
            400,
            "invalid-samples",
        )
        expect(client.post(URL, params={"CMCD": 'br="x",sid="s"'}), 400, "invalid-samples")
        expect(client.post(URL, params={"CMCD": "br=1;p"}), 400, "malformed-cmcd")
        expect(
            client.post(URL, content=b"{nope", headers={"Content-Type": "application/json"}),
            400,
            "malformed-json",
        )
        expect(client.post(URL, content=b"x" * 2_000_000), 413, "body-too-large")
        too_many = {"samples": [_sample(n, f"{run}-big") for n in range(101)]}
        expect(client.post(URL, json=too_many), 413, "too-many-samples")
        expect(
            client.post(URL, content=b"<a/>", headers={"Content-Type": "text/xml"}),
            415,
            "unsupported-media-type",
        )

    good_ids += [(f"cmcd-{run}", str(sn)) for sn in range(1, 8)]
    assert accepted == len(good_ids)
    records = _read_topic(bridge.settings, bridge.topic, len(good_ids))
    codec = default_codec()
    blocks = [decode_block(codec, m.value() or b"") for m in records]
    decoded = [s.to_avro() for b in blocks for s in b.samples()]
    (epoch,) = {r["pseudonym_epoch"] for r in decoded}
    pseudonyms = EpochPseudonyms(KeyringFile(bridge.keyring).key(epoch))
    stored = Counter(r["event_id"] for r in decoded)
    # Every well-formed sample exactly once; no refused one at all.
    assert [stored[pseudonyms.sample_event_id(*i)] for i in good_ids] == [1] * len(good_ids)
    assert [stored[pseudonyms.sample_event_id(*i)] for i in bad_ids] == [0] * len(bad_ids)
    assert {r["country"] for r in decoded} == {"SE"}
    # A record per request and partition, keyed so that it lands where each of its
    # sessions hashes to: the bridge's partitioner agrees with librdkafka's.
    for message, block in zip(records, blocks, strict=True):
        assert message.key() == block.partition_key.encode()
        wheres = {partition_of(c[0].encode(), 6) for c in block.contexts}
        assert wheres == {message.partition()}
    assert len(records) < len(decoded)
    raw = b"".join((m.key() or b"") + (m.value() or b"") for m in records)
    for identifier in (f"viewer-{run}", f"session-{run}", f"cmcd-{run}", SE_IP, "127.0.0.1"):
        assert identifier.encode() not in raw


def test_a_flooding_client_is_throttled_and_others_are_not(bridge: Bridge) -> None:
    run = uuid.uuid4().hex[:8]
    batch = {"samples": [_sample(n, run) for n in range(100)]}
    with httpx.Client(base_url=bridge.url, timeout=15.0) as client:
        answers = [
            client.post(URL, json=batch, headers={"X-Forwarded-For": US_IP}) for _ in range(15)
        ]
        other = client.post(
            URL, json={"samples": [_sample(0, run)]}, headers={"X-Forwarded-For": GB_IP}
        )

    statuses = [a.status_code for a in answers]
    assert 202 in statuses and 429 in statuses
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.json()["error"] == "rate-limited"
    assert int(refused.headers["retry-after"]) >= 1
    assert other.status_code == 202


def test_a_bridge_without_kafka_answers_503_with_retry_after(
    kafka_cluster: Settings, port_offset: int, tmp_path: Path
) -> None:
    port = 18183 + port_offset
    unreachable = kafka_cluster.model_copy(
        update={"kafka": KafkaSettings(port=19999 + port_offset, brokers=1)}
    )
    settings = _edge_settings(unreachable, tmp_path, port)
    config = BridgeSettings(keyring_file=tmp_path / "keys.json", send_timeout_s=1.5)
    process = _start_bridge(settings, config, "bridge-no-kafka", port)
    try:
        response = httpx.post(
            f"http://127.0.0.1:{port}{URL}",
            json={"samples": [_sample(0, "down")]},
            timeout=15.0,
        )
    finally:
        process.stop()

    assert response.status_code == 503
    assert response.json()["error"] == "delivery-failed"
    assert response.headers["retry-after"] == "1"


def test_with_two_worker_processes_every_sample_is_stored_under_one_epoch_key(
    kafka_cluster: Settings, port_offset: int, tmp_path: Path
) -> None:
    port = 18283 + port_offset
    settings = _edge_settings(kafka_cluster, tmp_path, port)
    topic = f"it.qoe.telemetry-{uuid.uuid4().hex[:12]}"
    admin = admin_client(settings)
    admin.create_topics([NewTopic(topic, 6, 1)])[topic].result()
    config = BridgeSettings(topic=topic, keyring_file=tmp_path / "keys.json", workers=2)
    process = _start_bridge(settings, config, "bridge-workers", port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=15.0) as client:
            answers = []
            for n in range(20):  # a connection each, for whichever worker accepts it
                client.headers["Connection"] = "close"
                answers.append(client.post(URL, json={"samples": [_sample(n, "w")]}).status_code)
    finally:
        process.stop()

    assert answers == [202] * 20
    records = _read_topic(settings, topic, 20)
    decoded = [
        s.to_avro()
        for m in records
        for s in decode_block(default_codec(), m.value() or b"").samples()
    ]
    assert len(decoded) == 20
    # One epoch key for both workers: one viewer, one pseudonym.
    assert len({r["viewer_pseudonym"] for r in decoded}) == 3  # _sample: three viewers
