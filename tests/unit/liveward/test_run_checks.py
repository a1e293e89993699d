"""`liveward run`'s failover check: the reaction to the kill, or a failover already in force."""

from __future__ import annotations

from liveward.commands.run import RunState, _failed_over

KILLED_AT = 1_000.0


def test_a_decision_after_the_kill_is_the_reaction_to_it() -> None:
    state = RunState()
    state.failover_away["eu-west"] = [KILLED_AT + 2.5]

    assert _failed_over(state, "eu-west", KILLED_AT) == (True, "2.5 s after the kill")


def test_a_failover_before_the_kill_that_was_not_failed_back_still_holds() -> None:
    state = RunState()
    state.failover_away["eu-west"] = [KILLED_AT - 20]
    passed, figure = _failed_over(state, "eu-west", KILLED_AT)

    assert passed and "before the kill" in figure


def test_a_failover_failed_back_before_the_kill_does_not_count() -> None:
    state = RunState()
    state.failover_away["eu-west"] = [KILLED_AT - 20]
    state.failed_back["eu-west"] = [KILLED_AT - 5]

    assert _failed_over(state, "eu-west", KILLED_AT) == (False, "-")
    assert _failed_over(RunState(), "eu-west", KILLED_AT) == (False, "-")
    # Another region's failover says nothing about this one.
    state.failover_away["us-east"] = [KILLED_AT + 1]
    assert _failed_over(state, "eu-west", KILLED_AT) == (False, "-")
