"""Parsing of limit strings: the documented forms, and any other text is a clear ValueError."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentos_mw.ratelimit import Algorithm, Bucket, RateLimit
from agentos_mw.ratelimit.headers import policy_value, seconds_up
from agentos_mw.ratelimit.limits import parse_limits


@pytest.mark.parametrize(
    ("text", "amount", "period"),
    [
        ("10/second", 10, 1),
        ("100/minute", 100, 60),
        ("1000/hour", 1000, 3600),
        ("5/day", 5, 86400),
        ("10 per minute", 10, 60),
        ("20/30s", 20, 30),
        ("20 / 30 seconds", 20, 30),
        (" 3/2 Hours ", 3, 7200),
    ],
)
def test_documented_forms(text: str, amount: int, period: int) -> None:
    assert RateLimit.parse(text) == RateLimit(amount, period)


UNITS = st.sampled_from(
    [("second", 1), ("s", 1), ("minute", 60), ("min", 60), ("hour", 3600), ("day", 86400)]
)


@settings(max_examples=250)
@given(st.integers(1, 10**6), st.integers(1, 99), UNITS, st.booleans())
def test_generated_limits_round_trip(
    amount: int, multiple: int, unit: tuple[str, int], per: bool
) -> None:
    text = f"{amount} per {multiple} {unit[0]}" if per else f"{amount}/{multiple}{unit[0]}"
    limit = RateLimit.parse(text)
    assert (limit.amount, limit.period) == (amount, multiple * unit[1])
    assert limit.emission_us * amount >= limit.period_us > (limit.emission_us - 1) * amount


@settings(max_examples=300)
@given(st.text(max_size=40))
def test_any_text_parses_or_raises_value_error(text: str) -> None:
    try:
        limit = RateLimit.parse(text)
    except ValueError:
        return
    assert limit.amount >= 1 and limit.period >= 1


@pytest.mark.parametrize(
    "text", ["", "0/minute", "10/fortnight", "ten/minute", "10/0 minutes", "-1/second", "10"]
)
def test_invalid(text: str) -> None:
    with pytest.raises(ValueError):
        RateLimit.parse(text)


def test_types_and_lists() -> None:
    with pytest.raises(TypeError):
        RateLimit.parse(10)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        RateLimit(1.5, 60)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="too large"):
        Bucket(Algorithm.SLIDING_WINDOW, (RateLimit(10**9, 86400),))
    assert Bucket(Algorithm.GCRA, (RateLimit(10**9, 86400),))
    assert parse_limits(["1/second", RateLimit(1, 1), "2/minute"]) == (
        RateLimit(1, 1),
        RateLimit(2, 60),
    )
    with pytest.raises(ValueError):
        parse_limits([])


def test_policy_header_and_rounding() -> None:
    assert (
        policy_value([RateLimit(100, 60), RateLimit(5, 1)])
        == b'"100-per-60s";q=100;w=60, "5-per-1s";q=5;w=1'
    )
    assert [seconds_up(us) for us in (0, 1, 999_999, 1_000_000, 1_000_001)] == [0, 1, 1, 1, 2]
