"""Response headers: IETF ``RateLimit-Policy``/``RateLimit`` and the classic ``X-RateLimit-*``.

The IETF fields follow draft-ietf-httpapi-ratelimit-headers (revisions 08 to 12): Structured
Field lists whose items are policy names with parameters, e.g.::

    RateLimit-Policy: "100-per-60s";q=100;w=60, "10-per-1s";q=10;w=1
    RateLimit: "10-per-1s";r=3;t=1

``q`` is the quota, ``w`` the window in seconds, ``r`` the remaining quota units and ``t`` the
seconds until the quota is fully available again. ``X-RateLimit-Reset`` uses the same delta
seconds (not an epoch time), so it never depends on clocks agreeing.
"""

from __future__ import annotations

from collections.abc import Sequence

from .limits import RateLimit
from .store import Decision

US = 1_000_000


def policy_value(limits: Sequence[RateLimit]) -> bytes:
    """``RateLimit-Policy`` value for ``limits`` (computed once per route at start-up)."""
    return ", ".join(f'"{lim.name}";q={lim.amount};w={lim.period}' for lim in limits).encode(
        "ascii"
    )


def seconds_up(us: int) -> int:
    """Whole seconds, rounded up (a client that waits this long will not be refused early)."""
    return -(-us // US) if us > 0 else 0


def retry_after(decision: Decision) -> bytes:
    """``Retry-After`` in whole seconds, at least 1."""
    return str(max(1, seconds_up(decision.retry_us))).encode("ascii")


def response_headers(
    decision: Decision, policy: bytes, ietf: bool, legacy: bool
) -> list[tuple[bytes, bytes]]:
    """Headers describing ``decision``, for allowed responses and for the 429 alike."""
    limit = decision.limit
    reset_us = decision.reset_us
    reset = -(-reset_us // US) if reset_us > 0 else 0
    remaining = decision.remaining if decision.remaining > 0 else 0
    if ietf and legacy:  # the default: one list, built at once
        return [
            (b"ratelimit-policy", policy),
            (b"ratelimit", b"%s%d;t=%d" % (limit.ietf_prefix, remaining, reset)),
            (b"x-ratelimit-limit", limit.amount_bytes),
            (b"x-ratelimit-remaining", b"%d" % remaining),
            (b"x-ratelimit-reset", b"%d" % reset),
        ]
    out: list[tuple[bytes, bytes]] = []
    if ietf:
        out += [
            (b"ratelimit-policy", policy),
            (b"ratelimit", b"%s%d;t=%d" % (limit.ietf_prefix, remaining, reset)),
        ]
    if not legacy:
        return out
    out += [
        (b"x-ratelimit-limit", limit.amount_bytes),
        (b"x-ratelimit-remaining", b"%d" % remaining),
        (b"x-ratelimit-reset", b"%d" % reset),
    ]
    return out
