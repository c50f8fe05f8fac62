"""The memory of successful authentications: bounded in time and in size."""

from shared.identity.cache import TtlCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_is_served_until_its_ttl_then_forgotten() -> None:
    clock = Clock()
    cache: TtlCache[str] = TtlCache(5.0, clock=clock)
    cache.put(("k",), "alice")
    clock.now += 4.99
    assert cache.get(("k",)) == "alice"
    clock.now += 0.01
    assert cache.get(("k",)) is None
    assert len(cache) == 0


def test_a_new_put_restarts_the_clock_of_that_entry_only() -> None:
    clock = Clock()
    cache: TtlCache[str] = TtlCache(5.0, clock=clock)
    cache.put(("a",), "1")
    clock.now += 3
    cache.put(("b",), "2")
    clock.now += 3
    assert cache.get(("a",)) is None
    assert cache.get(("b",)) == "2"


def test_the_oldest_entries_leave_first_when_full() -> None:
    cache: TtlCache[int] = TtlCache(60.0, max_entries=3, clock=Clock())
    for n in range(5):
        cache.put((str(n),), n)
    assert len(cache) == 3
    assert [cache.get((str(n),)) for n in range(5)] == [None, None, 2, 3, 4]


def test_a_zero_ttl_disables_the_cache() -> None:
    cache: TtlCache[str] = TtlCache(0.0, clock=Clock())
    cache.put(("k",), "v")
    assert not cache.enabled
    assert cache.get(("k",)) is None
