"""The algorithms against an independent reference model, on both the pure functions and the
memory store (the Redis store is checked against the same model in test_ratelimit_redis.py)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentos_mw.ratelimit import Algorithm, Bucket, MemoryStore, RateLimit
from agentos_mw.ratelimit.algorithms import STEPS

BASE_US = 1_733_000_000_000_000  # a realistic epoch in µs: the Lua script must stay exact here


class Model:
    """Textbook formulations, in exact fractions, of what each algorithm promises.

    GCRA is modelled as the equivalent token bucket: ``amount`` tokens, one token back every
    ``emission_us``. Windows are plain dictionaries of counts.
    """

    def __init__(self, algorithm: Algorithm, limits: Sequence[RateLimit]) -> None:
        self.algorithm = algorithm
        self.limits = list(limits)
        self.tokens = [Fraction(lim.amount) for lim in limits]
        self.last: list[int | None] = [None for _ in limits]
        self.counts: list[dict[int, int]] = [{} for _ in limits]

    def _gcra(self, i: int, now: int, cost: int) -> tuple[bool, int]:
        lim = self.limits[i]
        tokens = self.tokens[i]
        if self.last[i] is not None:
            tokens = min(
                Fraction(lim.amount), tokens + Fraction(now - self.last[i], lim.emission_us)
            )  # type: ignore[operator]
        return tokens >= cost, math.floor(tokens - cost) if tokens >= cost else math.floor(tokens)

    def _estimate(self, i: int, now: int) -> Fraction:
        lim = self.limits[i]
        window, elapsed = divmod(now, lim.period_us)
        counts = self.counts[i]
        if self.algorithm is Algorithm.FIXED_WINDOW:
            return Fraction(counts.get(window, 0))
        previous = counts.get(window - 1, 0)
        return previous * Fraction(lim.period_us - elapsed, lim.period_us) + counts.get(window, 0)

    def check(self, i: int, now: int, cost: int) -> tuple[bool, int]:
        if self.algorithm is Algorithm.GCRA:
            return self._gcra(i, now, cost)
        used = self._estimate(i, now)
        amount = self.limits[i].amount
        if used + cost <= amount:
            return True, max(0, math.floor(amount - used - cost))
        return False, max(0, math.floor(amount - used))

    def commit(self, i: int, now: int, cost: int) -> None:
        lim = self.limits[i]
        if self.algorithm is Algorithm.GCRA:
            tokens = self.tokens[i]
            if self.last[i] is not None:
                tokens = min(
                    Fraction(lim.amount), tokens + Fraction(now - self.last[i], lim.emission_us)
                )  # type: ignore[operator]
            self.tokens[i] = tokens - cost
            self.last[i] = now
        else:
            window = now // lim.period_us
            self.counts[i][window] = self.counts[i].get(window, 0) + cost

    def hit(self, now: int, cost: int) -> tuple[bool, int]:
        """(allowed, remaining of the tightest limit when allowed)."""
        results = [self.check(i, now, cost) for i in range(len(self.limits))]
        allowed = all(ok for ok, _ in results)
        if allowed:
            for i in range(len(self.limits)):
                self.commit(i, now, cost)
            return True, min(rem for _, rem in results)
        return False, -1


LIMITS = st.lists(
    st.builds(RateLimit, st.integers(1, 6), st.sampled_from([1, 2, 3, 60])),
    min_size=1,
    max_size=2,
    unique=True,
)
# Gaps: bursts (0), around the emission interval, across windows, long idle.
GAPS = st.one_of(
    st.just(0),
    st.integers(0, 400_000),
    st.integers(0, 3_000_000),
    st.sampled_from([1, 999_999, 1_000_000, 1_000_001, 60_000_000]),
)
SEQUENCES = st.lists(st.tuples(GAPS, st.sampled_from([1, 1, 1, 2, 3, 7])), min_size=1, max_size=40)
ALGORITHMS = st.sampled_from(list(Algorithm))


def run_store(store_hit, algorithm: Algorithm, limits: Sequence[RateLimit], sequence, start: int):  # type: ignore[no-untyped-def]
    """Drive ``store_hit(now_us, cost) -> Decision`` and the model side by side."""
    model = Model(algorithm, limits)
    now = start
    for gap, cost in sequence:
        now += gap
        expected_ok, expected_remaining = model.hit(now, cost)
        decision = store_hit(now, cost)
        assert decision.allowed == expected_ok, (now - start, cost)
        if expected_ok:
            assert decision.remaining == expected_remaining, (now - start, cost)
        else:
            assert decision.retry_us > 0


@settings(max_examples=250, deadline=None)
@given(ALGORITHMS, LIMITS, SEQUENCES, st.integers(0, 10**9))
def test_memory_store_agrees_with_model(algorithm, limits, sequence, offset) -> None:  # type: ignore[no-untyped-def]
    clock_us = [0]
    store = MemoryStore(clock=lambda: clock_us[0] / 1_000_000)
    bucket = Bucket(algorithm, tuple(limits))

    def hit(now: int, cost: int):  # type: ignore[no-untyped-def]
        clock_us[0] = now
        return store.hit_sync("client", [bucket], cost)

    run_store(hit, algorithm, limits, sequence, BASE_US + offset)


@settings(max_examples=250, deadline=None)
@given(ALGORITHMS, st.builds(RateLimit, st.integers(1, 6), st.sampled_from([1, 2, 60])), SEQUENCES)
def test_retry_after_is_the_first_moment_the_request_passes(algorithm, limit, sequence) -> None:  # type: ignore[no-untyped-def]
    step = STEPS[algorithm]
    state = None
    now = BASE_US
    for gap, cost in sequence:
        now += gap
        if cost > limit.amount:
            continue
        allowed, new_state, _, _, retry, _ = step(state, now, limit, cost)
        if allowed:
            state = new_state
            continue
        assert retry > 0
        assert step(state, now + retry, limit, cost)[0], "still refused after Retry-After"
        assert not step(state, now + retry - 1, limit, cost)[0], "Retry-After longer than needed"


def test_gcra_allows_a_burst_of_amount_then_one_per_interval() -> None:
    limit = RateLimit.parse("10/second")
    state = None
    now = BASE_US
    results = []
    for _ in range(11):
        allowed, new, *_ = STEPS[Algorithm.GCRA](state, now, limit, 1)
        results.append(allowed)
        state = new or state
    assert results == [True] * 10 + [False]
    assert STEPS[Algorithm.GCRA](state, now + 100_000, limit, 1)[0]
    assert not STEPS[Algorithm.GCRA](state, now + 99_999, limit, 1)[0]


def test_fixed_window_allows_double_at_the_boundary_and_sliding_window_does_not() -> None:
    limit = RateLimit.parse("10/minute")
    end_of_window = (BASE_US // limit.period_us + 1) * limit.period_us
    for algorithm, expected in ((Algorithm.FIXED_WINDOW, 20), (Algorithm.SLIDING_WINDOW, 10)):
        store = MemoryStore()
        bucket = Bucket(algorithm, (limit,))
        passed = sum(
            store.hit_sync("k", [bucket], now_us=end_of_window - 1 + (i // 10) * 2).allowed
            for i in range(40)
        )
        assert passed == expected, algorithm


def test_cost_above_the_amount_is_always_refused_with_a_finite_retry() -> None:
    for algorithm in Algorithm:
        store = MemoryStore()
        decision = store.hit_sync("k", [Bucket(algorithm, (RateLimit(5, 60),))], 6, now_us=BASE_US)
        assert not decision.allowed
        assert 0 < decision.retry_us <= 120_000_000


def test_several_buckets_count_together_or_not_at_all() -> None:
    store = MemoryStore()
    general = Bucket(Algorithm.GCRA, (RateLimit(3, 60),))
    route = Bucket(Algorithm.GCRA, (RateLimit(1, 60),), scope="POST /runs")
    assert store.hit_sync("k", [general, route], now_us=BASE_US).allowed
    refused = store.hit_sync("k", [general, route], now_us=BASE_US)
    assert not refused.allowed and refused.limit == RateLimit(1, 60)
    # the refused route request did not use the general quota: two more elsewhere pass
    assert store.hit_sync("k", [general], now_us=BASE_US).allowed
    assert store.hit_sync("k", [general], now_us=BASE_US).allowed
    assert not store.hit_sync("k", [general], now_us=BASE_US).allowed


@pytest.mark.parametrize("name", ["gcra", "sliding_window", "fixed_window"])
def test_algorithm_names(name: str) -> None:
    assert Algorithm(name).value == name
