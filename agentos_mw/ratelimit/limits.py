"""Rate limit strings ("100/minute", "10 per second", "5/2 hours") parsed once into numbers.

Times are integer microseconds everywhere in this package so that the memory store, the Redis
Lua script and the reference model in the tests compute bit-for-bit the same answers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

US_PER_SECOND = 1_000_000

_UNITS = {
    "s": 1,
    "sec": 1,
    "secs": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "mins": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hr": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
}
_LIMIT = re.compile(r"^\s*(\d{1,12})\s*(?:/|\s+per\s+)\s*(\d{1,6})?\s*([a-z]+)\s*$", re.IGNORECASE)

#: Doubles (Lua numbers) are exact integers below this.
EXACT = 2**53


@dataclass(frozen=True, slots=True)
class RateLimit:
    """``amount`` units (requests, by default) per ``period`` seconds.

    ``period_us`` and ``emission_us`` (the GCRA spacing between two requests, rounded up to a
    whole microsecond) are precomputed for the stores.
    """

    amount: int
    period: int
    period_us: int = field(init=False, repr=False, compare=False)
    emission_us: int = field(init=False, repr=False, compare=False)
    #: Header fragments, encoded once: ``"<name>";r=`` and the amount.
    ietf_prefix: bytes = field(init=False, repr=False, compare=False)
    amount_bytes: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise TypeError("rate limit amount must be an int")
        if isinstance(self.period, bool) or not isinstance(self.period, int):
            raise TypeError("rate limit period must be a whole number of seconds (int)")
        if self.amount < 1:
            raise ValueError("rate limit amount must be at least 1")
        if self.period < 1:
            raise ValueError("rate limit period must be at least 1 second")
        period_us = self.period * US_PER_SECOND
        if self.amount > 10**12 or period_us >= EXACT // 1024:
            raise ValueError(f"rate limit {self.amount}/{self.period}s is too large")
        object.__setattr__(self, "period_us", period_us)
        object.__setattr__(self, "emission_us", -(-period_us // self.amount))
        object.__setattr__(self, "ietf_prefix", f'"{self.name}";r='.encode("ascii"))
        object.__setattr__(self, "amount_bytes", str(self.amount).encode("ascii"))

    @classmethod
    def parse(cls, text: str | RateLimit) -> RateLimit:
        """``"100/minute"``, ``"10 per second"``, ``"1000/hour"``, ``"5/day"``, ``"20/30s"``."""
        if isinstance(text, RateLimit):
            return text
        if not isinstance(text, str):
            raise TypeError(
                f"rate limit must be a string like '100/minute', got {type(text).__name__}"
            )
        found = _LIMIT.match(text)
        unit = _UNITS.get(found.group(3).lower()) if found else None
        if found is None or unit is None:
            raise ValueError(
                f"invalid rate limit {text!r}: expected '<count>/<unit>' or '<count> per <unit>' "
                "with unit second, minute, hour or day (e.g. '100/minute', '10/30 seconds')"
            )
        multiple = int(found.group(2)) if found.group(2) else 1
        return cls(int(found.group(1)), multiple * unit)

    @property
    def name(self) -> str:
        """Policy name used in the ``RateLimit``/``RateLimit-Policy`` headers."""
        return f"{self.amount}-per-{self.period}s"

    def __str__(self) -> str:
        return f"{self.amount}/{self.period}s"


def parse_limits(value: object) -> tuple[RateLimit, ...]:
    """One limit or a list of them (strings or :class:`RateLimit`), validated, duplicates dropped."""
    if isinstance(value, (str, RateLimit)):
        items: list[object] = [value]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise TypeError("limits must be a string like '100/minute' or a list of them")
    if not items:
        raise ValueError("limits must not be empty")
    parsed: list[RateLimit] = []
    for item in items:
        limit = RateLimit.parse(item)  # type: ignore[arg-type]
        if limit not in parsed:
            parsed.append(limit)
    return tuple(parsed)
