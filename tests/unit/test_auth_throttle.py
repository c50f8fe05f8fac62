"""The authentication failure throttle's bookkeeping (pure logic, on a clock of the test's own; the
refusals themselves are tested end to end in tests/security/test_hostile_input.py)."""

import pytest

from services.api.identity.throttle import AuthThrottle, AuthThrottled


def test_it_watches_only_while_a_failure_is_recent_enough_to_throttle() -> None:
    now = [1000.0]
    throttle = AuthThrottle(per_address=2, per_key=2, window_seconds=60.0, clock=lambda: now[0])
    assert not throttle.watching  # nothing failed: no check is needed, so none is made
    throttle.check("10.0.0.1", "key")  # and one made anyway refuses no one
    throttle.failed("10.0.0.1", "key", "bad key")
    throttle.failed("10.0.0.1", "key", "bad key")
    now[0] += 59.0
    assert throttle.watching
    with pytest.raises(AuthThrottled):
        throttle.check("10.0.0.1", "key")
    throttle.check("10.0.0.2", "-")  # another address, no key: not throttled
    now[0] += 2.0
    # Past the window no failure counts any more: not watching is exactly "check refuses no one".
    assert not throttle.watching
    throttle.check("10.0.0.1", "key")
