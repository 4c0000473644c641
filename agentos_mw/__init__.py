"""agentos_mw: pure-ASGI middleware for agent servers (AgentOS, FastAPI, Starlette)."""

from __future__ import annotations

from .clientip import ClientIPResolver
from .paths import PathSet, RouteTable, route_path

__version__ = "0.1.0"

__all__ = [
    "ClientIPResolver",
    "PathSet",
    "RouteTable",
    "__version__",
    "route_path",
]
