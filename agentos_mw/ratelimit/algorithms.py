"""The three algorithms as pure functions of ``(state, now_us, limit, cost)``.

Every store calls these (the memory store directly; ``redis_store.LUA`` is a line-for-line
mirror), so a decision never depends on which store made it. All arithmetic is on integers
(microseconds), which doubles in Lua represent exactly while ``amount * period_us < 2**53``.
A denied request consumes nothing. With several limits, a request passes only when every limit
allows it, and then it is counted against all of them.

Trade-offs:

* ``gcra`` (default) - the Generic Cell Rate Algorithm, i.e. a leaky bucket stored as one
  number per key (the "theoretical arrival time"). Smooth: ``amount`` requests may burst, then
  one more every ``period / amount``. Exact, no window edges, the smallest state.
* ``sliding_window`` - fixed windows whose previous count is weighted by how much of it still
  overlaps the sliding window (Cloudflare's approximation). Three numbers per key; close to a
  true sliding log without storing every timestamp, but approximate by design.
* ``fixed_window`` - a counter per calendar window. Two numbers per key, easiest to explain,
  but a client can send ``2 * amount`` around a window boundary.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence

from .limits import RateLimit

State = tuple[int, ...]
#: ``(allowed, new_state, remaining, reset_us, retry_us, expires_us)``; ``new_state`` is ``None``
#: when nothing must be written (a denial).
Outcome = tuple[bool, State | None, int, int, int, int]
Step = Callable[[State | None, int, RateLimit, int], Outcome]


class Algorithm(str, enum.Enum):
    """Names accepted by ``RateLimitMiddleware(algorithm=...)``."""

    GCRA = "gcra"
    SLIDING_WINDOW = "sliding_window"
    FIXED_WINDOW = "fixed_window"

    @property
    def code(self) -> str:
        """One-letter code used in store keys and by the Lua script."""
        return _CODES[self]


_CODES = {Algorithm.GCRA: "g", Algorithm.SLIDING_WINDOW: "s", Algorithm.FIXED_WINDOW: "f"}


def gcra(state: State | None, now: int, limit: RateLimit, cost: int) -> Outcome:
    """State ``(tat,)``: the time at which the bucket would be empty again."""
    interval = limit.emission_us
    capacity = limit.amount * interval
    tat = state[0] if state is not None and state[0] > now else now
    new_tat = tat + cost * interval
    debt = new_tat - now
    if debt > capacity:
        retry = debt - capacity if cost <= limit.amount else limit.period_us
        return False, None, (capacity - (tat - now)) // interval, tat - now, retry, tat
    return True, (new_tat,), (capacity - debt) // interval, debt, 0, new_tat


def fixed_window(state: State | None, now: int, limit: RateLimit, cost: int) -> Outcome:
    """State ``(window_index, count)``."""
    period = limit.period_us
    index = now // period
    count = state[1] if state is not None and state[0] == index else 0
    end = (index + 1) * period
    if count + cost > limit.amount:
        return False, None, limit.amount - count, end - now, end - now, end
    count += cost
    return True, (index, count), limit.amount - count, end - now, 0, end


def sliding_window(state: State | None, now: int, limit: RateLimit, cost: int) -> Outcome:
    """State ``(window_index, previous_count, current_count)``."""
    period = limit.period_us
    amount = limit.amount
    index = now // period
    elapsed = now - index * period
    previous = current = 0
    if state is not None:
        if state[0] == index:
            previous, current = state[1], state[2]
        elif state[0] == index - 1:
            previous = state[2]
    budget = amount * period - previous * (period - elapsed)
    reset = period - elapsed
    if (current + cost) * period > budget:
        if cost > amount:
            retry = period
        elif current + cost <= amount:
            retry = reset - ((amount - current - cost) * period) // previous
        else:
            retry = reset + max(0, period - ((amount - cost) * period) // current)
        remaining = max(0, (budget - current * period) // period)
        return False, None, remaining, reset, retry, (index + 2) * period
    current += cost
    remaining = max(0, (budget - current * period) // period)
    return True, (index, previous, current), remaining, reset, 0, (index + 2) * period


STEPS: dict[Algorithm, Step] = {
    Algorithm.GCRA: gcra,
    Algorithm.FIXED_WINDOW: fixed_window,
    Algorithm.SLIDING_WINDOW: sliding_window,
}
#: Numbers of state per limit for each algorithm.
STATE_SIZE = {Algorithm.GCRA: 1, Algorithm.FIXED_WINDOW: 2, Algorithm.SLIDING_WINDOW: 3}


def parse_algorithm(value: str | Algorithm) -> Algorithm:
    try:
        return Algorithm(value)
    except ValueError:
        names = ", ".join(repr(a.value) for a in Algorithm)
        raise ValueError(f"unknown rate limit algorithm {value!r}; choose one of {names}") from None


def pick(outcomes: Sequence[Outcome]) -> int:
    """Index of the outcome to report: the denying limit that asks to wait longest, else the
    limit with the fewest remaining (first one on ties). The Lua script picks the same way."""
    best = 0
    for i in range(1, len(outcomes)):
        cand, cur = outcomes[i], outcomes[best]
        if not cur[0]:
            if not cand[0] and cand[4] > cur[4]:
                best = i
        elif not cand[0] or cand[2] < cur[2]:
            best = i
    return best
