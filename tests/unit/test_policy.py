"""The scheduling policy as a pure function: ordering, ownership of a backend, grouping, fairness."""

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.scheduler.policy import (
    BackendSnapshot,
    Grouping,
    QueuedJob,
    SessionInfo,
    dispatch_order,
    dispatch_window,
    free_slots,
    owning_session,
    plan_dispatches,
)
from shared.db.repositories.scheduling import BackendLoad
from shared.messaging.topology import message_priority
from shared.sessions.states import SessionMode, SessionState

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NO_GROUPING = Grouping(max_group_size=1, group_max_shots=0)


def job(
    job_id: str,
    owner: str | None = None,
    session: str | None = None,
    priority: int = 0,
    age: float = 0.0,
    shots: int = 100,
) -> QueuedJob:
    """A queued job; a larger `age` means created earlier."""
    return QueuedJob(job_id, owner, session, priority, T0 - timedelta(seconds=age), shots)


def info(
    session_id: str, mode: SessionMode, state: SessionState, activated: float | None = None
) -> SessionInfo:
    at = None if activated is None else T0 + timedelta(seconds=activated)
    return SessionInfo(session_id, mode, state, at)


def ids(order: list[QueuedJob]) -> list[str]:
    return [j.id for j in order]


def test_window_grows_with_live_executors() -> None:
    assert dispatch_window(0, 2) == 2
    assert dispatch_window(1, 2) == 2
    assert dispatch_window(3, 2) == 6


def test_free_slots_skip_full_backends() -> None:
    loads = [BackendLoad("a", in_flight=2, live_executors=1), BackendLoad("b", in_flight=1, live_executors=2)]
    assert free_slots(loads, per_executor=2) == {"b": 3}


def test_message_priority_spans_the_queue_levels() -> None:
    assert message_priority(-10, 4) == 0
    assert message_priority(0, 4) == 2
    assert message_priority(10, 4) == 4
    assert message_priority(99, 4) == 4


def test_an_active_dedicated_session_owns_the_backend() -> None:
    snapshot = BackendSnapshot(
        backend="b",
        free_slots=4,
        queued=[
            job("old-urgent", owner="x", priority=10, age=100),
            job("s2", owner="a", session="s", age=1),
            job("s1", owner="a", session="s", age=2),
        ],
        sessions={"s": info("s", SessionMode.DEDICATED, SessionState.ACTIVE, activated=0)},
        usage={"a": 1000.0, "x": 0.0},
    )
    assert owning_session(snapshot) == "s"
    assert ids(dispatch_order(snapshot)) == ["s1", "s2"]


def test_an_owning_session_with_nothing_queued_still_blocks_everyone_else() -> None:
    snapshot = BackendSnapshot(
        backend="b",
        free_slots=2,
        queued=[job("other", owner="x")],
        sessions={"s": info("s", SessionMode.DEDICATED, SessionState.ACTIVE, activated=0)},
    )
    assert plan_dispatches(snapshot, NO_GROUPING) == []


def test_a_dedicated_session_whose_job_is_on_its_way_owns_the_backend() -> None:
    snapshot = BackendSnapshot(
        backend="b",
        free_slots=2,
        queued=[job("other", owner="x", age=10), job("mine", session="s")],
        sessions={"s": info("s", SessionMode.DEDICATED, SessionState.OPEN)},
        in_flight_sessions=frozenset({"s"}),
    )
    assert ids(dispatch_order(snapshot)) == ["mine"]


def test_inactive_or_closed_sessions_do_not_own_the_backend() -> None:
    for state in (SessionState.INACTIVE, SessionState.CLOSED, SessionState.OPEN):
        snapshot = BackendSnapshot(
            backend="b",
            free_slots=2,
            queued=[job("other", owner="x", age=5)],
            sessions={"s": info("s", SessionMode.DEDICATED, state, activated=0)},
        )
        assert owning_session(snapshot) is None
        assert ids(dispatch_order(snapshot)) == ["other"]


def test_picking_a_dedicated_job_claims_the_backend_for_the_rest_of_the_pass() -> None:
    snapshot = BackendSnapshot(
        backend="b",
        free_slots=4,
        queued=[
            job("first", owner="x", age=30),
            job("s1", owner="a", session="s", age=20),
            job("later", owner="y", age=10),
            job("s2", owner="a", session="s", age=5),
            job("t1", owner="z", session="t", age=1),
        ],
        sessions={
            "s": info("s", SessionMode.DEDICATED, SessionState.INACTIVE, activated=0),
            "t": info("t", SessionMode.DEDICATED, SessionState.OPEN),
        },
    )
    assert ids(dispatch_order(snapshot)) == ["first", "s1", "s2"]


def test_started_batches_jump_the_queue_but_open_ones_do_not() -> None:
    snapshot = BackendSnapshot(
        backend="b",
        free_slots=5,
        queued=[
            job("plain", owner="x", age=100, priority=10),
            job("open-batch", owner="y", session="open", age=90),
            job("batch2", owner="a", session="run", age=1),
            job("batch1", owner="a", session="run", age=2),
        ],
        sessions={
            "run": info("run", SessionMode.BATCH, SessionState.ACTIVE, activated=0),
            "open": info("open", SessionMode.BATCH, SessionState.OPEN),
        },
        usage={"a": 500.0},
    )
    assert ids(dispatch_order(snapshot)) == ["batch1", "batch2", "plain", "open-batch"]


def test_fair_share_then_priority_then_age() -> None:
    snapshot = BackendSnapshot(
        backend="b",
        free_slots=10,
        queued=[
            job("heavy-user", owner="heavy", priority=10, age=100),
            job("light-low", owner="light", priority=-5, age=50),
            job("light-high", owner="light", priority=5, age=1),
            job("fresh-old", owner="fresh", age=60),
            job("fresh-new", owner="fresh", age=2),
        ],
        usage={"heavy": 100.0, "light": 10.0},
        job_cost=1000.0,  # each pick outweighs any usage: owners strictly take turns
    )
    # fresh (no usage) first, then light, then heavy; each owner's own jobs by priority then age.
    assert ids(dispatch_order(snapshot)) == [
        "fresh-old",
        "light-high",
        "heavy-user",
        "fresh-new",
        "light-low",
    ]


def test_owners_with_equal_usage_are_ordered_by_priority_then_age() -> None:
    snapshot = BackendSnapshot(
        backend="b",
        free_slots=3,
        queued=[
            job("a-old", owner="a", age=10),
            job("b-urgent", owner="b", priority=3),
            job("c", owner="c", age=20),
        ],
    )
    assert ids(dispatch_order(snapshot))[:2] == ["b-urgent", "c"]


def test_the_anonymous_owner_is_one_owner_among_others() -> None:
    snapshot = BackendSnapshot(
        backend="b",
        free_slots=4,
        queued=[job("anon1", age=3), job("anon2", age=2), job("named", owner="n", age=1)],
        usage={None: 50.0},
    )
    assert ids(dispatch_order(snapshot))[0] == "named"


def test_a_late_light_user_does_not_wait_for_a_heavy_users_backlog() -> None:
    backlog = [job(f"a{i}", owner="A", age=1000 - i) for i in range(50)]
    late = [job(f"b{i}", owner="B", age=10 - i) for i in range(5)]
    snapshot = BackendSnapshot(backend="b", free_slots=100, queued=backlog + late, usage={"A": 3.0})
    order = ids(dispatch_order(snapshot))
    assert max(order.index(f"b{i}") for i in range(5)) < 15


def test_small_jobs_share_dispatches_within_their_session() -> None:
    snapshot = BackendSnapshot(
        backend="b",
        free_slots=2,
        queued=[
            *(job(f"batch{i}", owner="a", session="run", age=100 - i) for i in range(6)),
            job("big", owner="a", session="run", age=200, shots=50_000),
            job("solo", owner="x", age=300),
        ],
        sessions={"run": info("run", SessionMode.BATCH, SessionState.ACTIVE, activated=0)},
    )
    plan = plan_dispatches(snapshot, Grouping(max_group_size=3, group_max_shots=1000))
    assert plan == [["big"], ["batch0", "batch1", "batch2"]]


def test_groups_spread_over_the_free_slots() -> None:
    snapshot = BackendSnapshot(backend="b", free_slots=2, queued=[job(f"j{i}", age=10 - i) for i in range(4)])
    plan = plan_dispatches(snapshot, Grouping(max_group_size=50, group_max_shots=1000))
    assert plan == [["j0", "j1"], ["j2", "j3"]]


def test_grouping_disabled_gives_one_job_per_dispatch() -> None:
    snapshot = BackendSnapshot(backend="b", free_slots=3, queued=[job(f"j{i}", age=10 - i) for i in range(5)])
    assert plan_dispatches(snapshot, NO_GROUPING) == [["j0"], ["j1"], ["j2"]]


session_ids = st.sampled_from([None, "s1", "s2", "b1"])
queued_jobs = st.lists(
    st.builds(
        job,
        job_id=st.uuids().map(str),
        owner=st.sampled_from([None, "a", "b", "c"]),
        session=session_ids,
        priority=st.integers(-10, 10),
        age=st.floats(0, 1000),
        shots=st.integers(1, 5000),
    ),
    max_size=40,
    unique_by=lambda j: j.id,
)
session_infos = st.fixed_dictionaries(
    {
        "s1": st.builds(
            info, st.just("s1"), st.just(SessionMode.DEDICATED), st.sampled_from(list(SessionState))
        ),
        "s2": st.builds(
            info, st.just("s2"), st.just(SessionMode.DEDICATED), st.sampled_from(list(SessionState))
        ),
        "b1": st.builds(info, st.just("b1"), st.just(SessionMode.BATCH), st.sampled_from(list(SessionState))),
    }
)


@given(
    queued=queued_jobs,
    sessions=session_infos,
    in_flight=st.frozensets(st.sampled_from(["s1", "s2", "b1"])),
    slots=st.integers(0, 5),
    max_group=st.integers(1, 8),
    usage=st.dictionaries(st.sampled_from([None, "a", "b", "c"]), st.floats(0, 100)),
)
def test_every_plan_respects_the_rules(
    queued: list[QueuedJob],
    sessions: dict[str, SessionInfo],
    in_flight: frozenset[str],
    slots: int,
    max_group: int,
    usage: dict[str | None, float],
) -> None:
    snapshot = BackendSnapshot("b", slots, queued, sessions, in_flight, usage)
    plan = plan_dispatches(snapshot, Grouping(max_group, 1000))
    planned = [job_id for group in plan for job_id in group]
    by_id = {j.id: j for j in queued}
    assert len(plan) <= slots
    assert len(planned) == len(set(planned))
    assert all(1 <= len(group) <= max_group for group in plan)
    for group in plan:
        assert len({by_id[job_id].session_id for job_id in group}) == 1
        if len(group) > 1:
            assert all(by_id[job_id].total_shots <= 1000 for job_id in group)
    owner = owning_session(snapshot)
    if owner is not None:
        assert {by_id[job_id].session_id for job_id in planned} <= {owner}
    dedicated = {by_id[job_id].session_id for job_id in planned if by_id[job_id].session_id in ("s1", "s2")}
    assert len(dedicated) <= 1, "two dedicated sessions would share the backend"


@settings(max_examples=150, deadline=None)
@given(
    others=st.integers(1, 3),
    ahead=st.integers(0, 3),
    costs=st.lists(st.sampled_from([1.0, 2.0, 3.0]), min_size=1, max_size=10),
    arrivals=st.lists(
        st.lists(st.tuples(st.integers(1, 3), st.integers(-10, 10)), max_size=3), min_size=1, max_size=10
    ),
)
def test_no_job_starves_under_fair_share(
    others: int, ahead: int, costs: list[float], arrivals: list[list[tuple[int, int]]]
) -> None:
    """However many jobs other owners keep submitting, at any priority, owner X's job J starts within a
    bound: X's usage decays to nothing within the window, and every other owner that then runs first
    has positive usage for a whole window afterwards."""
    window, max_cost, owners = 10.0, 3.0, others + 1
    bound = (ahead + 1) * (window + (owners + 1) * max_cost)
    clock = 0.0
    created = 0

    def new(owner: str, priority: int) -> QueuedJob:
        nonlocal created
        created += 1
        return QueuedJob(f"{owner}-{created}", owner, None, priority, T0 + timedelta(microseconds=created), 1)

    queue = [new("X", 0) for _ in range(ahead + 1)]
    target = queue[-1].id
    history: list[tuple[str | None, float, float]] = []  # owner, finished at, seconds
    step = 0
    while clock <= bound:
        for owner_index, priority in arrivals[step % len(arrivals)]:
            queue.append(new(f"O{(owner_index - 1) % others}", priority))
        usage: dict[str | None, float] = {}
        for owner, finished, seconds in history:
            if finished > clock - window:
                usage[owner] = usage.get(owner, 0.0) + seconds
        snapshot = BackendSnapshot("b", 1, queue, usage=usage, job_cost=1.0)
        [[picked]] = plan_dispatches(snapshot, NO_GROUPING)
        chosen = next(j for j in queue if j.id == picked)
        queue.remove(chosen)
        seconds = costs[step % len(costs)]
        clock += seconds
        history.append((chosen.owner, clock, seconds))
        if picked == target:
            return
        step += 1
    raise AssertionError(f"job {target} still waits at t={clock} (bound {bound})")
