"""The live window both packagers fold, and the playlists an origin renders."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.media.encoding import slots_per_timeline
from services.media.encryption import KeyRotation
from services.media.manifest import (
    LiveWindow,
    Variant,
    advance_window,
    render_media_playlist,
    render_multivariant_playlist,
)

W = 6


def fold(segments: list[int], start: LiveWindow | None = None) -> LiveWindow | None:
    window = start
    for seq in segments:
        window = advance_window(window, seq, W)
    return window


def test_a_new_stream_starts_a_window_of_one() -> None:
    assert advance_window(None, 100, W) == LiveWindow(100, 100, 0)


def test_the_window_slides_and_holds_at_most_the_playlist_length() -> None:
    window = fold(list(range(100, 110)))
    assert window == LiveWindow(104, 109, 0)
    assert window.segment_count == W


def test_the_partner_adding_the_same_segment_changes_nothing() -> None:
    window = fold([100, 101, 102])
    assert advance_window(window, 102, W) == window
    assert advance_window(window, 101, W) == window


def test_a_gap_starts_a_new_run_after_a_discontinuity() -> None:
    window = fold([100, 101, 102, 110])
    assert window == LiveWindow(110, 110, 1)
    assert window.starts_after_gap(W)
    later = fold(list(range(111, 120)), window)
    assert later == LiveWindow(114, 119, 1)
    assert not later.starts_after_gap(W)


def test_a_window_far_ahead_of_the_clock_is_a_new_run() -> None:
    # Left by a run with shorter segments (bigger numbers): waiting for it would stall.
    assert advance_window(LiveWindow(900, 905, 2), 500, W) == LiveWindow(500, 500, 3)


@given(
    st.lists(st.integers(min_value=1, max_value=3), min_size=1, max_size=40),
    st.lists(st.tuples(st.booleans(), st.booleans()), min_size=40, max_size=40),
)
def test_two_packagers_agree_whatever_order_they_publish_in(
    steps: list[int], schedule: list[tuple[bool, bool]]
) -> None:
    # Segments as the wall clock produces them (steps of 2 or 3 are gaps). For each
    # segment both packagers fold it into the later of their own window and the shared
    # one, in either order, and the second may not yet see the first one's publish.
    segments = []
    seq = 1000
    for step in steps:
        seq += step
        segments.append(seq)
    shared: LiveWindow | None = None
    own: dict[str, LiveWindow | None] = {"a": None, "b": None}
    for index, seq in enumerate(segments):
        b_first, lagging_view = schedule[index]
        seen_before = shared
        for name in ("b", "a") if b_first else ("a", "b"):
            view = seen_before if lagging_view else shared
            mine = own[name]
            base = (
                view
                if mine is None
                or (view is not None and view.last_segment_seq >= mine.last_segment_seq)
                else mine
            )
            own[name] = shared = advance_window(base, seq, W)
        assert shared == fold(segments[: index + 1])
    assert shared is not None
    assert 1 <= shared.segment_count <= W


def test_the_media_playlist_lists_the_window_with_dates() -> None:
    text = render_media_playlist(
        LiveWindow(850_000_000, 850_000_002, 0), segment_seconds=2.0, window=W
    )
    lines = text.splitlines()
    assert lines[:5] == [
        "#EXTM3U",
        "#EXT-X-VERSION:6",
        "#EXT-X-TARGETDURATION:2",
        "#EXT-X-MEDIA-SEQUENCE:850000000",
        "#EXT-X-DISCONTINUITY-SEQUENCE:0",
    ]
    assert lines[5] == "#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z"
    assert lines[6:8] == ["#EXTINF:2.000,", "seg-850000000.ts"]
    assert [line for line in lines if line.startswith("seg-")] == [
        "seg-850000000.ts", "seg-850000001.ts", "seg-850000002.ts",
    ]  # fmt: skip
    assert "#EXT-X-DISCONTINUITY\n" not in text


def test_a_run_after_a_gap_starts_with_a_discontinuity_tag() -> None:
    text = render_media_playlist(LiveWindow(500, 501, 3), segment_seconds=2.0, window=W)
    lines = text.splitlines()
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:2" in lines
    assert lines[lines.index("#EXT-X-DISCONTINUITY") + 1].startswith("#EXT-X-PROGRAM-DATE-TIME")
    # Once the tagged segment has left the window, the count includes it.
    slid = render_media_playlist(LiveWindow(500, 505, 3), segment_seconds=2.0, window=W)
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:3" in slid.splitlines()
    assert "#EXT-X-DISCONTINUITY\n" not in slid


def test_the_multivariant_playlist_steers_between_every_pathway() -> None:
    text = render_multivariant_playlist(
        "match",
        [
            Variant("eu-west.cdn-a", "http://127.0.0.1:8200"),
            Variant("us-east.cdn-a", "http://127.0.0.1:8202"),
        ],
        steering_uri="http://127.0.0.1:8084/v1/steering/match",
        default_pathway="eu-west.cdn-a",
        bandwidth_bps=3_000_000,
    )
    lines = text.splitlines()
    assert (
        '#EXT-X-CONTENT-STEERING:SERVER-URI="http://127.0.0.1:8084/v1/steering/match",'
        'PATHWAY-ID="eu-west.cdn-a"'
    ) in lines
    infs = [i for i, line in enumerate(lines) if line.startswith("#EXT-X-STREAM-INF")]
    assert len(infs) == 2
    assert 'PATHWAY-ID="us-east.cdn-a"' in lines[infs[1]]
    assert lines[infs[1] + 1] == "http://127.0.0.1:8202/live/match/media.m3u8"


KEYS = KeyRotation("http://127.0.0.1:8082", "match", 2.0, 10)


def key_lines(playlist: str) -> list[tuple[int, str]]:
    """(index of the segment that follows, URI) of every EXT-X-KEY, in order."""
    found = []
    segments = 0
    for line in playlist.splitlines():
        if line.startswith("#EXT-X-KEY:"):
            found.append((segments, line))
        elif line and not line.startswith("#"):
            segments += 1
    return found


def test_encrypted_playlists_name_a_key_at_the_top_and_at_every_period_change() -> None:
    # Segments 103..108 of 2 s: 103, 104 in period 20 (200..210 s), 105..108 in period 21.
    playlist = render_media_playlist(
        LiveWindow(103, 108, 0), segment_seconds=2.0, window=W, keys=KEYS
    )
    assert key_lines(playlist) == [
        (0, '#EXT-X-KEY:METHOD=AES-128,URI="http://127.0.0.1:8082/v1/keys/match/20"'),
        (2, '#EXT-X-KEY:METHOD=AES-128,URI="http://127.0.0.1:8082/v1/keys/match/21"'),
    ]
    # No IV attribute: a player then uses each segment's media sequence, as ffmpeg did.
    assert "IV=" not in playlist
    plain = render_media_playlist(LiveWindow(103, 108, 0), segment_seconds=2.0, window=W)
    assert key_lines(plain) == []


def test_a_new_timeline_is_a_discontinuity_counted_once_it_left_the_window() -> None:
    day = slots_per_timeline(2.0)
    listed = render_media_playlist(
        LiveWindow(day - 2, day + 3, 0), segment_seconds=2.0, window=W, timeline_wraps=True
    )
    lines = listed.splitlines()
    assert lines.count("#EXT-X-DISCONTINUITY") == 1
    tag = lines.index("#EXT-X-DISCONTINUITY")
    assert next(x for x in lines[tag:] if not x.startswith("#")) == f"seg-{day}.ts"
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:0" in lines
    gone = render_media_playlist(
        LiveWindow(day + 1, day + 6, 0), segment_seconds=2.0, window=W, timeline_wraps=True
    )
    assert "#EXT-X-DISCONTINUITY" not in gone.splitlines()
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:1" in gone.splitlines()
    # Synthetic media keeps one timeline: no tag at the wrap.
    same = render_media_playlist(LiveWindow(day - 2, day + 3, 0), segment_seconds=2.0, window=W)
    assert "#EXT-X-DISCONTINUITY" not in same.splitlines()
