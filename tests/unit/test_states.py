import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.jobs.states import FINAL_JOB_STATES, JOB_TRANSITIONS, JobStatus, check_job_transition, sources_of
from shared.kit.errors import Conflict


def test_final_states_have_no_way_out() -> None:
    for state in FINAL_JOB_STATES:
        assert JOB_TRANSITIONS[state] == frozenset()


def test_ibm_names_are_the_clients_vocabulary() -> None:
    assert [s.ibm_name for s in JobStatus] == ["Queued", "Running", "Completed", "Failed", "Cancelled"]


def test_sources_agree_with_the_table() -> None:
    assert sources_of(JobStatus.CANCELLED) == {JobStatus.QUEUED, JobStatus.RUNNING}
    # a short job run before its claim is recorded from QUEUED
    assert sources_of(JobStatus.DONE) == {JobStatus.RUNNING, JobStatus.QUEUED}
    # a dispatch keeps a job QUEUED; a requeue brings a RUNNING one back
    assert sources_of(JobStatus.QUEUED) == {JobStatus.QUEUED, JobStatus.RUNNING}


def test_refused_transition_names_both_states() -> None:
    with pytest.raises(Conflict) as refused:
        check_job_transition(JobStatus.DONE, JobStatus.CANCELLED)
    assert refused.value.status == 409
    assert "Completed" in refused.value.message and "Cancelled" in refused.value.message


@given(st.lists(st.sampled_from(list(JobStatus)), max_size=30))
def test_any_walk_that_follows_the_table_ends_final_at_most_once(moves: list[JobStatus]) -> None:
    state = JobStatus.QUEUED
    finals = 0
    for target in moves:
        try:
            check_job_transition(state, target)
        except Conflict:
            assert target not in JOB_TRANSITIONS[state]
            continue
        state = target
        finals += state.is_final
    assert finals <= 1
