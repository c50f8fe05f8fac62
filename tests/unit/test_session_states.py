"""The session state machine: the table, and that no illegal transition is reachable."""

from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from shared.sessions.states import (
    SESSION_TRANSITIONS,
    SessionState,
    session_sources_of,
)


def test_closed_is_final_and_open_is_never_reentered() -> None:
    assert SESSION_TRANSITIONS[SessionState.CLOSED] == frozenset()
    assert session_sources_of(SessionState.OPEN) == frozenset()


def test_only_a_job_start_activates_and_only_an_active_session_goes_idle() -> None:
    assert session_sources_of(SessionState.ACTIVE) == {SessionState.OPEN, SessionState.INACTIVE}
    assert session_sources_of(SessionState.INACTIVE) == {SessionState.ACTIVE}
    assert session_sources_of(SessionState.CLOSED) == {
        SessionState.OPEN,
        SessionState.ACTIVE,
        SessionState.INACTIVE,
    }


@given(st.sampled_from(list(SessionState)), st.sampled_from(list(SessionState)))
def test_sources_used_by_the_conditional_update_agree_with_the_table(
    current: SessionState, target: SessionState
) -> None:
    assert (current in session_sources_of(target)) == (target in SESSION_TRANSITIONS[current])


# What can happen to a session, and the state each event asks for.
EVENTS = {
    "job_started": SessionState.ACTIVE,
    "interactive_ttl_lapsed": SessionState.INACTIVE,
    "drained": SessionState.CLOSED,
    "cancelled": SessionState.CLOSED,
    "max_ttl_reached": SessionState.CLOSED,
}


@given(st.lists(st.sampled_from(sorted(EVENTS)), max_size=40))
def test_no_event_sequence_reaches_an_illegal_transition(events: list[str]) -> None:
    state = SessionState.OPEN
    visited = [state]
    for event in events:
        target = EVENTS[event]
        if target not in SESSION_TRANSITIONS[state]:
            continue  # the repository's conditional UPDATE matches no row: nothing happens
        state = target
        visited.append(state)
    for before, after in pairwise(visited):
        assert after in SESSION_TRANSITIONS[before]
    # Closed at most once and only at the end; open only at the start.
    assert SessionState.CLOSED not in visited[:-1]
    assert SessionState.OPEN not in visited[1:]
