"""The player's pure decisions: buffer and stalls, pathway choice, live start and reloads."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.players.cmcd import Token, encode_cmcd, round_to
from services.players.hls import MediaPlaylist
from services.players.model import (
    PathwayChooser,
    Phase,
    Playback,
    initial_priority,
    reload_delay,
    start_sequence,
)


def test_playback_starts_once_enough_is_buffered_and_stalls_when_dry() -> None:
    playback = Playback(100.0, startup_s=2.0, resume_s=2.0)
    playback.advance(100.5)
    assert playback.phase is Phase.WAITING
    playback.add(100.5, 2.0)
    assert (playback.phase, playback.startup_delay_s) == (Phase.PLAYING, 0.5)
    playback.add(101.0, 2.0)
    playback.advance(104.0)  # 4 s buffered at 100.5, dry at 104.5
    assert playback.phase is Phase.PLAYING
    assert round(playback.level_s, 6) == 0.5
    playback.advance(106.0)
    assert playback.phase is Phase.STALLED
    assert round(playback.stalled_s, 6) == 1.5
    playback.add(107.0, 2.0)
    assert playback.phase is Phase.PLAYING
    assert playback.stalls == [(104.5, 107.0)]
    playback.finish(108.0)
    assert round(playback.played_s, 6) == 5.0
    assert round(playback.wanted_s(108.0), 6) == 7.5


def test_a_session_that_never_started_wanted_all_of_it() -> None:
    playback = Playback(10.0, startup_s=2.0, resume_s=2.0)
    playback.finish(20.0)
    assert (playback.played_s, playback.wanted_s(20.0), playback.startup_delay_s) == (
        0.0,
        10.0,
        None,
    )


def test_a_stall_open_at_the_end_is_closed_by_it() -> None:
    playback = Playback(0.0, startup_s=1.0, resume_s=1.0)
    playback.add(0.0, 1.0)
    playback.finish(3.0)
    assert playback.stalls == [(1.0, 3.0)]


@given(st.lists(st.tuples(st.floats(0.0, 3.0), st.floats(0.0, 4.0)), max_size=30))
def test_after_the_first_frame_time_is_either_played_or_stalled(
    events: list[tuple[float, float]],
) -> None:
    playback = Playback(0.0, startup_s=2.0, resume_s=2.0)
    now = 0.0
    for gap, seconds in events:
        now += gap
        playback.add(now, seconds)
    now += 1.0
    playback.finish(now)
    if playback.first_play_at is not None:
        assert abs(playback.played_s + playback.stalled_s - playback.wanted_s(now)) < 1e-6
        assert abs(sum(end - start for start, end in playback.stalls) - playback.stalled_s) < 1e-6
    else:
        assert playback.played_s == 0.0


def test_the_first_listed_pathway_that_has_not_failed_is_chosen() -> None:
    chooser = PathwayChooser(("eu.a", "eu.b", "us.a"), ("us.a", "eu.a"), penalty_s=30.0)
    assert chooser.ordered() == ["us.a", "eu.a", "eu.b"]
    assert chooser.choose(0.0) == "us.a"
    chooser.penalize("us.a", 0.0)
    assert chooser.choose(1.0) == "eu.a"
    chooser.penalize("eu.a", 1.0)
    assert chooser.choose(2.0) == "eu.b"  # not listed: used only when the listed ones failed
    chooser.penalize("eu.b", 2.0)
    assert chooser.choose(3.0) is None
    assert chooser.choose_anyway(3.0) == "us.a"  # the one that failed longest ago
    assert chooser.choose(30.5) == "us.a"  # its penalty is over


def test_steering_reorders_and_unknown_pathways_are_ignored() -> None:
    chooser = PathwayChooser(("eu.a", "us.a"), ("eu.a", "us.a"), penalty_s=30.0)
    chooser.steer(("ap.a", "us.a", "eu.a"))
    assert chooser.choose(0.0) == "us.a"


def test_the_playlists_pathway_id_comes_first_until_steering_answers() -> None:
    assert initial_priority(("a", "b", "c"), "b") == ("b", "a", "c")
    assert initial_priority(("a", "b"), "z") == ("a", "b")
    assert initial_priority(("a", "b"), None) == ("a", "b")


def test_a_live_player_joins_three_segments_from_the_edge() -> None:
    window = MediaPlaylist(2.0, 100, tuple(f"seg-{n}.ts" for n in range(100, 106)), (2.0,) * 6)
    assert start_sequence(window) == 103
    short = MediaPlaylist(2.0, 100, ("seg-100.ts",), (2.0,))
    assert start_sequence(short) == 100
    assert reload_delay(True, 2.0) == 2.0
    assert reload_delay(False, 2.0) == 1.0


def test_cmcd_is_a_sorted_structured_dictionary() -> None:
    payload = encode_cmcd(
        {
            "sid": 'a"b',
            "br": 3000,
            "ot": Token("av"),
            "su": True,
            "bs": False,
            "com.x-y": Token("eu"),
        }
    )
    assert payload == 'br=3000,com.x-y=eu,ot=av,sid="a\\"b",su'
    assert round_to(1249, 100) == 1200
    assert round_to(1250.1, 100) == 1300
