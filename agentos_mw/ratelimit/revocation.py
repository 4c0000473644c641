"""``RevocationList``: refuse revoked tokens on every worker, backed by a rate-limit store.

Two kinds of entry, both expiring on their own:

* a token by ``jti``, until a time (normally the token's ``exp``; after that it is dead anyway);
* a subject: every token of ``sub`` *issued before* a time (``iat`` earlier than it, or no
  ``iat`` at all) - "log out everywhere" and "password changed". The entry lives for
  ``max_token_lifetime`` seconds after that time, by when every such token has expired.

An instance is the ``revocation_check`` hook of ``JWTMiddleware``: ``await rl(claims)`` is True
when the token is revoked. With a :class:`RedisStore` a check is one ``MGET``.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from .keys import bounded
from .memory import MemoryStore
from .store import Store, StoreError

log = logging.getLogger("agentos_mw.ratelimit")

US = 1_000_000
When = float | int | dt.datetime


def _to_us(when: When, name: str) -> int:
    if isinstance(when, dt.datetime):
        if when.tzinfo is None:
            raise ValueError(f"{name} must be timezone-aware")
        return round(when.timestamp() * US)
    if isinstance(when, bool) or not isinstance(when, (int, float)) or not math.isfinite(when):
        raise TypeError(f"{name} must be epoch seconds or an aware datetime")
    return round(when * US)


def _identifier(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return bounded(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


class RevocationList:
    """Revoked tokens and subjects in ``store`` (a fresh :class:`MemoryStore` by default, which
    only this process sees: use a :class:`RedisStore` to share revocations across workers).

    ``on_store_error`` says what a check does when the store cannot answer: ``"raise"``
    (default) raises :class:`StoreError`, which ``JWTMiddleware`` answers with 503; ``"allow"``
    treats the token as not revoked; ``"deny"`` as revoked.
    """

    def __init__(
        self,
        store: Store | None = None,
        *,
        max_token_lifetime: float = 86400.0,
        on_store_error: str = "raise",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if store is None:
            store = MemoryStore()
        if not all(callable(getattr(store, name, None)) for name in ("put_marker", "get_markers")):
            raise TypeError(
                "store must be a MemoryStore, a RedisStore or implement the Store protocol"
            )
        if isinstance(max_token_lifetime, bool) or not isinstance(max_token_lifetime, (int, float)):
            raise TypeError("max_token_lifetime must be a number of seconds")
        if not max_token_lifetime > 0:
            raise ValueError("max_token_lifetime must be positive")
        if on_store_error not in ("raise", "allow", "deny"):
            raise ValueError("on_store_error must be 'raise', 'allow' or 'deny'")
        self.store = store
        self.max_token_lifetime_us = round(max_token_lifetime * US)
        self._on_store_error = on_store_error
        self._clock = clock
        #: Checks answered by ``on_store_error`` because the store failed.
        self.store_errors = 0

    async def revoke_token(self, jti: str, until: When) -> None:
        """Refuse the token with this ``jti`` until ``until`` (pass its ``exp``)."""
        key = _identifier(jti)
        if key is None:
            raise ValueError("jti must be a non-empty string")
        await self.store.put_marker("jti:" + key, 1, _to_us(until, "until"))

    async def revoke_subject(self, sub: str, before: When | None = None) -> None:
        """Refuse every token of ``sub`` issued before ``before`` (default: now)."""
        key = _identifier(sub)
        if key is None:
            raise ValueError("sub must be a non-empty string")
        cutoff = _to_us(self._clock() if before is None else before, "before")
        await self.store.put_marker("sub:" + key, cutoff, cutoff + self.max_token_lifetime_us)

    async def is_revoked(self, claims: Mapping[str, Any]) -> bool:
        """True when the token with these (verified) claims has been revoked."""
        if not isinstance(claims, Mapping):
            return False
        jti = _identifier(claims.get("jti"))
        sub = _identifier(claims.get("sub"))
        keys = []
        if jti is not None:
            keys.append("jti:" + jti)
        if sub is not None:
            keys.append("sub:" + sub)
        if not keys:
            return False
        try:
            found = await self.store.get_markers(keys)
        except StoreError:
            self.store_errors += 1
            log.debug("revocation store failed; on_store_error=%s", self._on_store_error)
            if self._on_store_error == "raise":
                raise
            return self._on_store_error == "deny"
        if jti is not None and found[0] is not None:
            return True
        cutoff = found[-1] if sub is not None else None
        if cutoff is None:
            return False
        iat = claims.get("iat")
        if isinstance(iat, bool) or not isinstance(iat, (int, float)) or not math.isfinite(iat):
            return True  # cannot show the token is newer than the revocation
        return bool(iat * US < cutoff)

    async def __call__(self, claims: dict[str, Any]) -> bool:
        return await self.is_revoked(claims)
