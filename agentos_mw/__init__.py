"""agentos_mw: pure-ASGI middleware for agent servers (AgentOS, FastAPI, Starlette).

Everything public is importable from here; optional dependencies (redis, prometheus-client,
httpx, fastapi) are imported only when the feature that needs them is used.
"""

from __future__ import annotations

from ._asgi import first_header, get_state, on_response_start, send_error
from .auth import JWTMiddleware, JWTUser, TokenSource
from .clientip import ClientIPResolver
from .headers import SecurityHeadersMiddleware
from .observability import (
    AccessLogMiddleware,
    MetricsMiddleware,
    RequestIDLogFilter,
    RequestIDMiddleware,
    get_request_id,
    metrics_app,
)
from .paths import PathSet, RouteTable, route_path
from .ratelimit import (
    Algorithm,
    MemoryStore,
    RateLimit,
    RateLimitMiddleware,
    RedisStore,
    RevocationList,
)
from .rbac import (
    AGENTOS_DEFAULT_SCOPE_MAPPINGS,
    RBACMiddleware,
    RBACPolicy,
    RequireScopes,
    accessible_ids,
    has_scope,
)
from .stack import apply_stack, secure_stack

__version__ = "0.1.0"

__all__ = [
    "AGENTOS_DEFAULT_SCOPE_MAPPINGS",
    "AccessLogMiddleware",
    "Algorithm",
    "ClientIPResolver",
    "JWTMiddleware",
    "JWTUser",
    "MemoryStore",
    "MetricsMiddleware",
    "PathSet",
    "RBACMiddleware",
    "RBACPolicy",
    "RateLimit",
    "RateLimitMiddleware",
    "RedisStore",
    "RequestIDLogFilter",
    "RequestIDMiddleware",
    "RequireScopes",
    "RevocationList",
    "RouteTable",
    "SecurityHeadersMiddleware",
    "TokenSource",
    "__version__",
    "accessible_ids",
    "apply_stack",
    "first_header",
    "get_request_id",
    "get_state",
    "has_scope",
    "metrics_app",
    "on_response_start",
    "route_path",
    "secure_stack",
    "send_error",
]
