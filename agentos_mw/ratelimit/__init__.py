"""Rate limiting: ``RateLimitMiddleware`` with memory and Redis stores, and a token revocation
list on the same stores."""

from __future__ import annotations

from .algorithms import Algorithm
from .limits import RateLimit
from .memory import MemoryStore
from .middleware import RateLimitMiddleware
from .redis_store import RedisStore
from .revocation import RevocationList
from .store import Bucket, Decision, Store, StoreError

__all__ = [
    "Algorithm",
    "Bucket",
    "Decision",
    "MemoryStore",
    "RateLimit",
    "RateLimitMiddleware",
    "RedisStore",
    "RevocationList",
    "Store",
    "StoreError",
]
