"""Fleet figures: availability, stalls, and how long until players fetch from a region."""

from __future__ import annotations

from services.players.model import SegmentLog, Switch
from services.players.summary import PlayerReport, percentile, summarize, time_to_region


def report(
    player: int, fetches: list[tuple[str, float]], *, stalls=(), wanted=10.0, served=None
) -> PlayerReport:  # type: ignore[no-untyped-def]
    log = SegmentLog()
    for seq, (pathway, at) in enumerate(fetches):
        log.add(seq, pathway, at)
    stalled = sum(end - start for start, end in stalls)
    return PlayerReport(
        player=player,
        session_id=f"s{player}",
        started_at=0.0,
        ended_at=100.0,
        startup_delay_s=0.1,
        wanted_s=wanted,
        served_s=wanted - stalled,
        stalls=tuple(stalls),
        segments=log,
        switches=(
            Switch(0.0, None, "eu-west.cdn-a", "start"),
            Switch(50.0, "eu-west.cdn-a", "us-east.cdn-a", "connect-refused"),
        ),
        errors={"connect-refused": 1},
        skipped_segments=0,
    )


def test_availability_is_served_over_wanted() -> None:
    reports = [
        report(0, [("eu-west.cdn-a", 1.0)]),
        report(1, [("eu-west.cdn-a", 1.0), ("us-east.cdn-a", 52.0)], stalls=((50.0, 52.0),)),
    ]
    summary = summarize(reports)
    assert summary.availability == 18.0 / 20.0
    assert summary.stalled_players == 1
    assert summary.longest_stall_s == 2.0
    assert summary.segments_by_pathway == {"eu-west.cdn-a": 2, "us-east.cdn-a": 1}
    assert summary.switches_by_reason == {"connect-refused": 2}  # the start is no switch
    assert summary.as_dict()["availability"] == 0.9


def test_time_until_a_share_of_players_fetch_from_a_region() -> None:
    reports = [
        report(0, [("eu-west.cdn-a", 49.0), ("us-east.cdn-a", 51.0)]),
        report(1, [("eu-west.cdn-a", 49.0), ("us-east.cdn-b", 53.0)]),
        report(2, [("eu-west.cdn-a", 49.0), ("eu-west.cdn-a", 51.0)]),
    ]
    assert time_to_region(reports, "us-east", 0.5, since=50.0) == 3.0
    assert time_to_region(reports, "us-east", 0.99, since=50.0) is None
    assert time_to_region(reports, "eu-west", 0.3, since=50.0) == 1.0


def test_percentiles_by_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([float(n) for n in range(1, 101)], 99) == 99.0
