"""QoE windows: figures, event time and lateness, the k-anonymity floor, and their invariants."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Sequence
from itertools import pairwise
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.distinct import hash64
from processors.qoe import (
    ANY,
    GroupStats,
    Partial,
    RegionWindows,
    WindowRules,
    advance_watermark,
    aggregate_id,
    anonymity_plan,
    close_windows,
    event_time,
    fold_partial,
    partials_of,
    partials_of_blocks,
    percentile,
    significant,
)
from streams.events import QoEAggregate, QoETelemetrySample
from streams.telemetry import SampleBlock, blocks_of

T0 = 1_700_000_000_000 - 1_700_000_000_000 % 10_000
RULES = WindowRules(window_ms=10_000, lateness_ms=5_000, k=3)


def sample(
    n: int,
    at: int,
    *,
    viewer: str | None = None,
    session: str | None = None,
    cdn: str = "cdn-a",
    content: str = "live-1",
    region: str = "eu-west",
    **fields: Any,
) -> QoETelemetrySample:
    values: dict[str, Any] = {
        "event_id": str(uuid.UUID(int=n)),
        "occurred_at": at,
        "region": "eu-west",
        "session_ref": session or f"s-{n}",
        "viewer_pseudonym": viewer or f"v-{n}",
        "pseudonym_epoch": "2024-05-01",
        "content_id": content,
        "cdn": cdn,
        "serving_region": region,
        "country": "NL",
        "subdivision": "",
        "sampled_at": at,
        "bitrate_kbps": 3000,
        "buffer_ms": 8000,
        "play_ms": 1000,
        "rebuffer_count": 0,
        "rebuffer_ms": 0,
    }
    values.update(fields)
    return QoETelemetrySample(**values)


def run(
    batches: Iterable[Sequence[QoETelemetrySample]],
    rules: WindowRules = RULES,
    *,
    region: str = "eu-west",
    finish: bool = True,
) -> tuple[list[QoEAggregate], RegionWindows]:
    """Both stages over the batches, for one serving region; then close everything."""
    state = RegionWindows(region)
    out: list[QoEAggregate] = []
    for batch in batches:
        for partial in partials_of(batch, rules):
            if partial.serving_region == region:
                fold_partial(state, partial)
        out += close_windows(state, rules, now_ms=0, region="eu-west")
    if finish:
        advance_watermark(state, 2**62)
        out += close_windows(state, rules, now_ms=0, region="eu-west")
    return out, state


def test_one_window_gives_the_figures_of_its_samples() -> None:
    samples = [
        sample(1, T0 + 100, play_ms=900, rebuffer_ms=100, rebuffer_count=1, startup_ms=800),
        sample(2, T0 + 200, bitrate_kbps=6000, startup_ms=1200, error_code="E42"),
        sample(3, T0 + 300, viewer="v-1", session="s-1", bitrate_kbps=1500),
        sample(4, T0 + 400, exited_before_start=True, play_ms=0),
    ]

    [aggregate], _ = run([samples])

    assert (aggregate.window_start, aggregate.window_end) == (T0, T0 + 10_000)
    assert (aggregate.serving_region, aggregate.cdn, aggregate.content_id) == (
        "eu-west",
        "cdn-a",
        "live-1",
    )
    assert aggregate.samples == 4
    assert aggregate.viewers == 3  # v-1 twice
    assert aggregate.sessions == 3  # s-1 twice
    assert aggregate.rebuffer_ratio == pytest.approx(100 / (100 + 2900))
    assert (aggregate.play_ms, aggregate.rebuffer_ms) == (2900, 100)
    assert aggregate.video_start_ms_p50 == 800  # lower median of (800, 1200)
    assert aggregate.error_rate == 0.25
    assert aggregate.exits_before_start == 1
    assert aggregate.bitrate_p50_kbps == 3000  # 1500, 3000, 3000, 6000
    assert aggregate.bitrate_p95_kbps == 6000
    assert aggregate.late_samples == aggregate.suppressed_samples == 0
    assert aggregate.event_id == aggregate_id("eu-west", "cdn-a", "live-1", T0)


def test_windows_are_tumbling_on_event_time_and_close_after_the_lateness() -> None:
    state = RegionWindows("eu-west")
    early = [sample(i, T0 + 9_000 + i) for i in range(3)]
    for partial in partials_of(early, RULES):
        fold_partial(state, partial)
    # Watermark at T0+9002: the first window is still open.
    assert close_windows(state, RULES, now_ms=0, region="eu-west") == []

    # A sample at window end + lateness - 1 does not close it yet.
    for partial in partials_of([sample(10, T0 + 14_999)], RULES):
        fold_partial(state, partial)
    assert close_windows(state, RULES, now_ms=0, region="eu-west") == []

    for partial in partials_of([sample(11, T0 + 15_000)], RULES):
        fold_partial(state, partial)
    [closed] = close_windows(state, RULES, now_ms=0, region="eu-west")
    assert closed.window_start == T0 and closed.samples == 3
    assert set(state.windows) == {T0 + 10_000}


def test_a_player_clock_ahead_of_the_bridge_counts_at_the_bridge_time() -> None:
    ahead = sample(1, T0 + 5_000, sampled_at=T0 + 60_000)
    behind = sample(2, T0 + 5_000, sampled_at=T0 - 1)

    assert event_time(ahead) == T0 + 5_000
    assert event_time(behind) == T0 - 1
    assert {p.window_start for p in partials_of([ahead, behind], RULES)} == {T0, T0 - 10_000}


def test_late_samples_are_counted_in_the_next_published_aggregate() -> None:
    first = [sample(i, T0 + i) for i in range(3)]
    closing = [sample(10 + i, T0 + 25_000 + i) for i in range(3)]  # closes [T0, T0+10s)
    # Sampled in the first window, but arriving after it closed.
    late = [sample(20 + i, T0 + 26_000, sampled_at=T0 + 500) for i in range(2)]
    later = [sample(30 + i, T0 + 45_000 + i) for i in range(3)]

    out, state = run([first, closing, late, later])

    by_window = {a.window_start: a for a in out}
    assert by_window[T0].samples == 3 and by_window[T0].late_samples == 0
    assert by_window[T0 + 20_000].late_samples == 2
    assert sum(a.samples + a.late_samples for a in out) == 11
    assert state.late_total == 2 and state.pending_late == 0


def test_a_small_group_merges_into_its_cdn_then_its_region() -> None:
    rules = WindowRules(k=3)
    big = [sample(i, T0 + i, content="big") for i in range(3)]
    # Two contents of cdn-a with two viewers each: alone < 3, together 4.
    small_a = [sample(10 + i, T0 + i, content=f"a{i % 2}") for i in range(4)]
    # Two CDNs with one viewer each: even their CDN rows are too small, the region row is not...
    tiny = [sample(20, T0, cdn="cdn-b", content="x"), sample(21, T0, cdn="cdn-c", content="y")]
    # ...once a third one joins them.
    tiny.append(sample(22, T0, cdn="cdn-d", content="z"))

    out, _ = run([big + small_a + tiny], rules)

    rows = {(a.cdn, a.content_id): a for a in out}
    assert set(rows) == {("cdn-a", "big"), ("cdn-a", ANY), (ANY, ANY)}
    assert rows[("cdn-a", ANY)].viewers == 4 and rows[("cdn-a", ANY)].merged_groups == 2
    assert rows[(ANY, ANY)].viewers == 3 and rows[(ANY, ANY)].merged_groups == 3
    assert rows[("cdn-a", "big")].merged_groups == 0
    assert sum(a.samples for a in out) == 10


def test_what_stays_below_k_is_suppressed_and_reported_later() -> None:
    rules = WindowRules(k=3)
    lonely = [sample(1, T0, content="x"), sample(2, T0, cdn="cdn-b")]
    next_window = [sample(10 + i, T0 + 10_000 + i) for i in range(3)]

    out, state = run([lonely, next_window], rules)

    assert [a.window_start for a in out] == [T0 + 10_000]
    assert out[0].suppressed_samples == 2
    assert state.suppressed_groups_total == 2


def test_one_viewer_with_many_sessions_is_still_one_viewer() -> None:
    samples = [sample(i, T0 + i, viewer="v-same") for i in range(50)]

    out, state = run([samples], WindowRules(k=2))

    assert out == [] and state.suppressed_samples_total == 50


def test_percentiles_are_nearest_rank() -> None:
    assert percentile({}, 0.5) is None
    assert percentile({5: 1}, 0.95) == 5
    assert percentile({1: 1, 2: 1, 3: 1, 4: 1}, 0.5) == 2
    assert percentile(dict.fromkeys(range(1, 61), 1), 0.95) == 57
    assert percentile({100: 95, 9000: 5}, 0.95) == 100
    assert percentile({100: 94, 9000: 6}, 0.95) == 9000


def test_histogram_values_keep_three_significant_digits() -> None:
    assert [significant(v) for v in (0, 999, 1234, 12_345, 12_355, 6000)] == [
        0,
        999,
        1230,
        12_300,
        12_400,
        6000,
    ]


def test_partials_and_state_survive_a_json_round_trip() -> None:
    samples = [
        sample(i, T0 + i * 997, content=f"c{i % 3}", startup_ms=700 + i, error_code="E1")
        for i in range(500)
    ]
    state = RegionWindows("eu-west")
    for partial in partials_of(samples, RULES):
        assert Partial.from_json(orjson.loads(orjson.dumps(partial.to_json()))) == partial
        fold_partial(state, partial)
    state.pending_late = 7

    restored = RegionWindows.from_json(orjson.loads(orjson.dumps(state.to_json())))

    advance_watermark(state, 2**62)
    advance_watermark(restored, 2**62)
    assert close_windows(restored, RULES, now_ms=1, region="x") == close_windows(
        state, RULES, now_ms=1, region="x"
    )


def test_rules_refuse_a_floor_where_counts_are_estimates() -> None:
    with pytest.raises(ValueError, match="exact-count limit"):
        WindowRules(k=10_000)


# Property tests: totals, the floor, and independence from batching and order.

samples_strategy = st.lists(
    st.builds(
        lambda n, offset, delay, viewer, cdn, content, play, rebuf, startup, error, bitrate: sample(
            n,
            T0 + offset + delay,
            sampled_at=T0 + offset,
            viewer=f"v-{viewer}",
            session=f"s-{viewer}-{n % 3}",
            cdn=cdn,
            content=content,
            play_ms=play,
            rebuffer_ms=rebuf,
            startup_ms=startup,
            error_code=error,
            exited_before_start=startup is None and n % 5 == 0,
            bitrate_kbps=bitrate,
        ),
        st.integers(0, 10**6),
        st.integers(0, 60_000),
        st.integers(0, 20_000),
        st.integers(0, 25),
        st.sampled_from(["cdn-a", "cdn-b", "cdn-c"]),
        st.sampled_from(["live-1", "live-2", "vod-3"]),
        st.integers(0, 10_000),
        st.integers(0, 3_000),
        st.none() | st.integers(0, 600_000),
        st.none() | st.sampled_from(["E1", "E2"]),
        st.sampled_from([300, 1_234, 3_000, 12_345_678]),
    ),
    max_size=300,
)


def _batches(samples: list[QoETelemetrySample], cuts: list[int]) -> list[list[QoETelemetrySample]]:
    points = sorted({c % (len(samples) + 1) for c in cuts})
    edges = [0, *points, len(samples)]
    return [samples[a:b] for a, b in pairwise(edges) if a < b]


@settings(max_examples=150)
@given(samples_strategy, st.lists(st.integers(0, 10**6), max_size=8), st.integers(2, 8))
def test_every_sample_is_published_late_or_suppressed_exactly_once(
    samples: list[QoETelemetrySample], cuts: list[int], k: int
) -> None:
    rules = WindowRules(window_ms=10_000, lateness_ms=5_000, k=k)

    out, state = run(_batches(samples, cuts), rules)

    accounted = sum(a.samples + a.late_samples + a.suppressed_samples for a in out)
    assert accounted + state.pending_late + state.pending_suppressed == len(samples)
    assert sum(a.play_ms for a in out) <= sum(s.play_ms for s in samples)


@settings(max_examples=150)
@given(samples_strategy, st.lists(st.integers(0, 10**6), max_size=8), st.integers(2, 8))
def test_no_published_aggregate_covers_fewer_than_k_viewers(
    samples: list[QoETelemetrySample], cuts: list[int], k: int
) -> None:
    rules = WindowRules(window_ms=10_000, lateness_ms=5_000, k=k)

    out, _ = run(_batches(samples, cuts), rules)

    for aggregate in out:
        assert aggregate.viewers >= k
        # Checked against the samples themselves, not only the published count.
        covered = {
            s.viewer_pseudonym
            for s in samples
            if rules.window_of(event_time(s)) == aggregate.window_start
            and aggregate.cdn in (ANY, s.cdn)
            and aggregate.content_id in (ANY, s.content_id)
        }
        assert len(covered) >= k


@settings(max_examples=100)
@given(samples_strategy, st.lists(st.integers(0, 10**6), max_size=8), st.randoms())
def test_without_lateness_batching_and_order_do_not_change_the_figures(
    samples: list[QoETelemetrySample], cuts: list[int], rnd: random.Random
) -> None:
    # With lateness longer than every delay and shuffle, nothing is late: the result must
    # be that of one pass over all samples, whatever the batches and their order.
    rules = WindowRules(window_ms=10_000, lateness_ms=10**7, k=2)
    shuffled = list(samples)
    rnd.shuffle(shuffled)

    reference, _ = run([samples], rules)
    batched, _ = run(_batches(shuffled, cuts), rules)

    assert sorted(batched, key=lambda a: a.event_id) == sorted(reference, key=lambda a: a.event_id)


def test_anonymity_plan_with_no_groups_publishes_nothing() -> None:
    plan = anonymity_plan({}, 10)
    assert plan.published == () and plan.suppressed_samples == 0


def _one_by_one(samples: list[QoETelemetrySample], rules: WindowRules) -> list[Partial]:
    """The definition, a sample at a time: what the columnar fold must agree with."""
    groups: dict[tuple[int, str, str, str], GroupStats] = {}
    for s in samples:
        window = rules.window_of(event_time(s))
        group = groups.setdefault((window, s.serving_region, s.cdn, s.content_id), GroupStats())
        group.add(
            s.play_ms, s.rebuffer_ms, s.rebuffer_count, s.error_code is not None,
            significant(s.bitrate_kbps), -1 if s.startup_ms is None else s.startup_ms,
            s.exited_before_start, hash64(s.viewer_pseudonym), hash64(s.session_ref),
        )  # fmt: skip
    watermark = max((s.occurred_at for s in samples), default=0)
    return [Partial(*key, stats, watermark) for key, stats in groups.items()]


@settings(max_examples=100)
@given(samples_strategy, st.integers(1, 6))
def test_blocks_fold_into_the_partials_of_their_samples_one_by_one(
    samples: list[QoETelemetrySample], partitions: int
) -> None:
    rules = WindowRules(window_ms=10_000, lateness_ms=5_000, k=3)
    blocks = [SampleBlock.from_record(b.to_avro()) for b in blocks_of(samples, partitions)]

    from_blocks = partials_of_blocks(blocks, rules)
    one_by_one = _one_by_one(samples, rules)

    def key(p: Partial) -> tuple[int, str, str, str]:
        return (p.window_start, p.serving_region, p.cdn, p.content_id)

    def canonical(partials: list[Partial]) -> list[dict[str, Any]]:
        # Histograms are pairs in first-seen order; the order carries no meaning.
        out = []
        for p in sorted(partials, key=key):
            data = p.to_json()
            data["st"] = {**data["st"], "br": sorted(data["st"]["br"])}
            data["st"]["start"] = sorted(data["st"]["start"])
            out.append(data)
        return out

    assert canonical(from_blocks) == canonical(one_by_one)
    assert canonical(partials_of(samples, rules)) == canonical(one_by_one)
