"""Verified-token cache: a client reusing its token pays a dictionary lookup, not a signature.

Bounded LRU keyed by the raw token bytes. An entry expires no later than the token's ``exp``
(and never lives longer than ``MAX_AGE`` seconds), so an expired token is always re-verified
and rejected. Revocation is not cached: the middleware asks its hook on every request.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, Protocol, TypeVar

MAX_AGE = 300.0


class Expiring(Protocol):
    expires_at: float


E = TypeVar("E", bound=Expiring)


class TokenCache(Generic[E]):
    __slots__ = ("_data", "maxsize")

    def __init__(self, maxsize: int) -> None:
        if not isinstance(maxsize, int) or isinstance(maxsize, bool) or maxsize < 0:
            raise ValueError("cache_size must be a non-negative integer (0 disables the cache)")
        self.maxsize = maxsize
        self._data: OrderedDict[bytes, E] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    def get(self, token: bytes, now: float) -> E | None:
        entry = self._data.get(token)
        if entry is None:
            return None
        if entry.expires_at <= now:
            del self._data[token]
            return None
        self._data.move_to_end(token)
        return entry

    def put(self, token: bytes, entry: E, now: float) -> None:
        if self.maxsize == 0 or entry.expires_at <= now:
            return
        data = self._data
        data[token] = entry
        data.move_to_end(token)
        if len(data) > self.maxsize:
            data.popitem(last=False)

    def clear(self) -> None:
        self._data.clear()
