from services.scheduler.policy import dispatch_window, free_slots, message_priority
from shared.db.repositories.jobs import BackendLoad


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
