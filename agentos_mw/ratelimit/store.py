"""What the middleware asks of a store: one atomic ``hit`` over a request's buckets.

A *bucket* is a set of limits sharing one counter scope: the global limits, or the limits of one
route pattern. A request on a route with its own limits touches two buckets; the store decides
all of them in one step, so either every limit counts the request or none does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from .algorithms import STEPS, Algorithm, Step
from .limits import EXACT, RateLimit


class StoreError(Exception):
    """The store could not answer (unreachable, timed out, protocol error)."""


@dataclass(frozen=True, slots=True)
class Bucket:
    """Limits counted together under ``scope`` ("" for the global limits, else a route pattern)."""

    algorithm: Algorithm
    limits: tuple[RateLimit, ...]
    scope: str = ""
    #: Short prefix for the memory store's keys; names per limit for the Redis store's keys.
    prefix: str = field(init=False, repr=False, compare=False)
    names: tuple[str, ...] = field(init=False, repr=False, compare=False)
    step: Step = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.limits:
            raise ValueError("a bucket needs at least one limit")
        if self.algorithm is Algorithm.SLIDING_WINDOW:
            for limit in self.limits:
                if limit.amount * limit.period_us >= EXACT:  # weighted counts must stay exact
                    raise ValueError(f"rate limit {limit} is too large for the sliding window")
        sig = ",".join(f"{limit.amount}/{limit.period}" for limit in self.limits)
        object.__setattr__(self, "step", STEPS[self.algorithm])
        object.__setattr__(self, "prefix", f"{self.algorithm.code}{sig}|{self.scope}|")
        object.__setattr__(
            self,
            "names",
            tuple(
                f"{self.algorithm.code}:{lim.amount}/{lim.period}:{self.scope}"
                for lim in self.limits
            ),
        )


class Decision:
    """The answer for one request: allowed or not, and what to tell the client.

    ``limit`` is the limit reported in headers (the denying one, else the one with the fewest
    remaining); ``reset_us`` is when that limit is fully available again (window end for the
    window algorithms); ``retry_us`` is how long to wait before the same request can pass.
    """

    __slots__ = ("allowed", "limit", "remaining", "reset_us", "retry_us")

    def __init__(
        self, allowed: bool, limit: RateLimit, remaining: int, reset_us: int, retry_us: int
    ) -> None:
        self.allowed = allowed
        self.limit = limit
        self.remaining = remaining
        self.reset_us = reset_us
        self.retry_us = retry_us

    def __repr__(self) -> str:
        return (
            f"Decision(allowed={self.allowed}, limit={self.limit}, remaining={self.remaining}, "
            f"reset_us={self.reset_us}, retry_us={self.retry_us})"
        )


@runtime_checkable
class Store(Protocol):
    """The interface :class:`RateLimitMiddleware` and :class:`RevocationList` use."""

    async def hit(
        self, key: str, buckets: Sequence[Bucket], cost: int = 1, *, now_us: int | None = None
    ) -> Decision:
        """Count ``cost`` against every limit of ``buckets`` for ``key`` if all allow it."""
        ...

    async def put_marker(self, key: str, value: int, expires_at_us: int) -> None:
        """Store an integer under ``key`` until ``expires_at_us`` (revocation entries)."""
        ...

    async def get_markers(self, keys: Sequence[str]) -> list[int | None]:
        """The integers stored under ``keys`` (``None`` where absent or expired)."""
        ...
