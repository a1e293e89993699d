"""The real encoder's plan: slots, timestamps on a daily timeline, its command line."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from liveward.settings import MediaSettings
from services.media.encoding import (
    LAUNCH_LEAD_S,
    TIMELINE_START_S,
    continuation_run,
    encoder_argv,
    finished_chunks,
    gop_frames,
    is_timeline_start,
    plan_run,
    pts_offset_s,
    slots_per_timeline,
    timeline_starts_before,
)
from services.media.segments import segment_start

DAY_SLOTS = 43_200  # 2-s slots in a day


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_a_run_starts_on_the_next_slot_boundary_it_can_still_make() -> None:
    run = plan_run(1_000.5, 2.0)
    assert run.first_slot == 501
    assert run.launch_at == 1_002.0 - LAUNCH_LEAD_S
    # Too close to the boundary to launch in time: the one after.
    assert plan_run(1_001.9, 2.0).first_slot == 502


def test_a_run_ends_where_the_timeline_wraps_and_the_next_takes_over() -> None:
    run = plan_run(DAY_SLOTS * 2.0 * 10 - 10.0, 2.0)  # 10 s before midnight
    assert run.last_slot() == DAY_SLOTS * 10 - 1
    following = continuation_run(run.last_slot(), 2.0)
    assert following.first_slot == DAY_SLOTS * 10
    assert following.pts_offset_s == TIMELINE_START_S
    assert following.chunks == DAY_SLOTS
    assert following.launch_at == segment_start(following.first_slot, 2.0) - LAUNCH_LEAD_S


@given(st.integers(min_value=0, max_value=10**10), st.sampled_from([1.0, 2.0, 4.0, 6.0]))
def test_timestamps_are_a_function_of_the_slot_alone(slot: int, seconds: float) -> None:
    offset = pts_offset_s(slot, seconds)
    assert TIMELINE_START_S <= offset < TIMELINE_START_S + 86_400
    if not is_timeline_start(slot + 1, seconds):
        # The next slot continues the same timeline, one segment later.
        assert pts_offset_s(slot + 1, seconds) == offset + seconds
    else:
        assert pts_offset_s(slot + 1, seconds) == TIMELINE_START_S


def test_timeline_starts_before_counts_the_wraps_that_left_a_window() -> None:
    per = slots_per_timeline(2.0)
    assert per == DAY_SLOTS
    assert timeline_starts_before(per, 2.0) == 0  # its own tag is still listed
    assert timeline_starts_before(per + 1, 2.0) == 1
    assert timeline_starts_before(3 * per + 5, 2.0) == 3


def test_the_encoder_makes_one_gop_per_segment_from_the_run_s_first_slot() -> None:
    media = MediaSettings(source="ffmpeg", video_fps=25, segment_seconds=2.0)
    run = plan_run(1_000.5, 2.0)
    argv = encoder_argv(media, run, Path("/w/chunk-%d.ts"), Path("/w/chunks.csv"))
    assert gop_frames(media) == 50
    assert option(argv, "-g") == option(argv, "-keyint_min") == "50"
    assert option(argv, "-sc_threshold") == "0"
    assert option(argv, "-profile:v") == "main"
    assert option(argv, "-tune") == "zerolatency"
    assert option(argv, "-segment_start_number") == "501"
    assert option(argv, "-output_ts_offset") == f"{pts_offset_s(501, 2.0):.3f}"
    assert option(argv, "-t") == f"{run.chunks * 2.0:.3f}"
    assert "testsrc2=size=640x360:rate=25" in argv
    assert argv.count("-re") == 2  # both live inputs are paced in real time
    assert argv[-1] == "/w/chunk-%d.ts"


def test_the_chunk_list_names_finished_chunks_in_order() -> None:
    listing = "chunk-501.ts,0.000000,1004.000000\nchunk-502.ts,1004.0,1006.0\nnoise\n"
    assert finished_chunks(listing) == [501, 502]
    assert finished_chunks("") == []
