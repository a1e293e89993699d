"""Load drivers for the HTTP benches: open loop at a fixed rate, closed loop at a concurrency.

Open loop: request i leaves at `start + i / rate` whether or not earlier ones have been
answered, as independent players would send them, and its latency counts from that
scheduled time, so a stall counts against every request it delayed (no coordinated
omission). Closed loop: a fixed number of clients send back to back; its throughput is
the most the service answers, its latency what that costs.

`HttpPool` is a small keep-alive HTTP/1.1 client on asyncio streams. The driver runs on
the same cores as the service it measures, so it must cost far less per request than
the service; httpx's machinery costs about as much as a license answer.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bench.revocation import percentile

# What a request reports: None when answered as expected, else a short label of the failure.
Outcome = str | None
Send = Callable[[int], Awaitable[Outcome]]


@dataclass(frozen=True, slots=True)
class LoadFigures:
    """Latencies (ms) and failures of one run."""

    offered_per_s: float | None  # None: closed loop
    requests: int
    elapsed_s: float
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    failures: dict[str, int] = field(default_factory=dict)
    # Open loop: p99 of how late the driver itself sent a request after its scheduled
    # time (its event loop busy or descheduled): latency the service did not cause.
    send_lag_p99_ms: float | None = None

    @property
    def errors(self) -> int:
        return sum(self.failures.values())

    @property
    def answered_per_s(self) -> float:
        return (self.requests - self.errors) / self.elapsed_s if self.elapsed_s else 0.0


def _figures(
    offered: float | None,
    results: list[tuple[float, Outcome]],
    elapsed_s: float,
    send_lags: list[float] | None = None,
) -> LoadFigures:
    latencies = [latency for latency, _ in results]
    return LoadFigures(
        offered_per_s=offered,
        requests=len(results),
        elapsed_s=elapsed_s,
        p50_ms=percentile(latencies, 0.5),
        p99_ms=percentile(latencies, 0.99),
        p999_ms=percentile(latencies, 0.999),
        max_ms=max(latencies, default=0.0),
        failures=dict(Counter(outcome for _, outcome in results if outcome is not None)),
        send_lag_p99_ms=None if send_lags is None else percentile(send_lags, 0.99),
    )


async def open_loop(send: Send, *, rate_per_s: float, seconds: float) -> LoadFigures:
    """Offer `rate_per_s` requests a second for `seconds`; latency from each scheduled time."""
    total = round(rate_per_s * seconds)
    start = time.perf_counter() + 0.05
    send_lags: list[float] = []

    async def one(index: int, scheduled: float) -> tuple[float, Outcome]:
        send_lags.append((time.perf_counter() - scheduled) * 1000)
        try:
            outcome = await send(index)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            outcome = type(exc).__name__
        return (time.perf_counter() - scheduled) * 1000, outcome

    tasks = []
    for index in range(total):
        scheduled = start + index / rate_per_s
        pause = scheduled - time.perf_counter()
        if pause > 0:
            await asyncio.sleep(pause)
        tasks.append(asyncio.create_task(one(index, scheduled)))
    results = await asyncio.gather(*tasks)
    return _figures(rate_per_s, list(results), time.perf_counter() - start, send_lags)


async def closed_loop(send: Send, *, concurrency: int, seconds: float) -> LoadFigures:
    """`concurrency` clients, each sending its next request when the last is answered."""
    results: list[tuple[float, Outcome]] = []
    counter = iter(range(1 << 62))
    started = time.perf_counter()
    deadline = started + seconds

    async def client() -> None:
        while time.perf_counter() < deadline:
            sent = time.perf_counter()
            try:
                outcome = await send(next(counter))
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                outcome = type(exc).__name__
            results.append(((time.perf_counter() - sent) * 1000, outcome))

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return _figures(None, results, time.perf_counter() - started)


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    headers: bytes  # the raw header block, for whoever needs more than the status
    body: bytes


class HttpPool:
    """Keep-alive HTTP/1.1 connections to one host; `request` takes the raw request bytes.

    Enough for our own services' answers (Content-Length bodies, keep-alive); not a
    general client.
    """

    def __init__(self, host: str, port: int, *, size: int = 64) -> None:
        self._host = host
        self._port = port
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._slots = asyncio.Semaphore(size)

    async def request(self, raw: bytes) -> HttpAnswer:
        async with self._slots:
            if self._idle:
                reader, writer = self._idle.pop()
                try:
                    answer = await self._exchange(reader, writer, raw)
                except asyncio.IncompleteReadError as exc:
                    if exc.partial:
                        raise
                    # The server closed a connection that sat idle past its keep-alive.
                    reader, writer = await asyncio.open_connection(self._host, self._port)
                    answer = await self._exchange(reader, writer, raw)
            else:
                reader, writer = await asyncio.open_connection(self._host, self._port)
                answer = await self._exchange(reader, writer, raw)
            self._idle.append((reader, writer))
            return answer

    @staticmethod
    async def _exchange(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes
    ) -> HttpAnswer:
        try:
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            lowered = head.lower()
            at = lowered.find(b"\r\ncontent-length:")
            if at >= 0:
                end = lowered.index(b"\r\n", at + 2)
                length = int(lowered[at + 17 : end])
            body = await reader.readexactly(length) if length else b""
        except BaseException:
            writer.close()
            raise
        return HttpAnswer(status, head, body)

    async def close(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()
