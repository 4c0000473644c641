"""App factories shared by the in-process, streaming and network benchmarks (``uvicorn --factory``)."""

from __future__ import annotations

import logging
import time
from typing import Any

import jwt
from starlette.applications import Starlette
from starlette.middleware import Middleware

from . import harness
from .baselines import NoopBaseHTTP, NoopPure, wrap
from .seed_style import SeedLogging, SeedRateLimit, SeedRequestID, SeedSecurityHeaders

SECRET = "agentos-mw-benchmark-secret-0123456789abcdef"
HUGE_LIMIT = "100000000/minute"


def mint(scopes: list[str] | None = None, sub: str = "bench-user", **claims: Any) -> str:
    payload = {
        "sub": sub,
        "scopes": scopes if scopes is not None else ["agent_os:admin"],
        "exp": int(time.time()) + 86400,
        "iat": int(time.time()),
        **claims,
    }
    return jwt.encode(payload, SECRET, algorithm="HS256")


BENCH_TOKEN = mint()


def quiet_access_log() -> None:
    """Access records are formatted but not written: we measure the middleware, not the disk."""
    logger = logging.getLogger("agentos_mw.access")
    logger.handlers[:] = [logging.NullHandler()]
    logger.propagate = False
    logger.setLevel(logging.INFO)


def stack_options(metrics: bool = True) -> dict[str, Any]:
    options: dict[str, Any] = {
        "auth": {"verification_keys": [SECRET], "algorithm": "HS256"},
        "rbac": True,
        "rate_limit": {"limits": [HUGE_LIMIT]},
        "security_headers": True,
        "request_id": True,
        "access_log": True,
        "metrics": False,
    }
    if metrics:
        from prometheus_client import CollectorRegistry

        options["metrics"] = {"registry": CollectorRegistry()}
    return options


def bare() -> Any:
    return harness.make_app()


def stack() -> Any:
    from agentos_mw import secure_stack

    quiet_access_log()
    return with_middleware(*secure_stack(**stack_options()))


def stack_layer(layer: str) -> Any:
    """The bare app with only ``layer`` of :func:`stack` (``auth`` includes RBAC)."""
    from agentos_mw import secure_stack

    quiet_access_log()
    full = stack_options()
    options = {key: (value if key == layer else None) for key, value in full.items()}
    options["rbac"] = True if layer == "auth" else None
    return with_middleware(*secure_stack(**options))


def with_middleware(*middleware: Middleware) -> Starlette:
    """The baseline app's routes with ``middleware`` installed the usual way (Agno's
    JWTMiddleware reads ``scope["app"]``, which only exists inside a Starlette app)."""
    return Starlette(routes=harness.make_app().routes, middleware=list(middleware))


def seed_stack() -> Any:
    """The same features as BaseHTTPMiddleware recipes, with Agno's own JWTMiddleware for auth."""
    from agno.os.middleware import JWTMiddleware as AgnoJWT

    logging.getLogger("benchmarks.seed_style").disabled = True
    return with_middleware(
        Middleware(SeedSecurityHeaders),
        Middleware(SeedRequestID),
        Middleware(SeedLogging),
        Middleware(AgnoJWT, verification_keys=[SECRET], algorithm="HS256", authorization=True),
        Middleware(SeedRateLimit),
    )


def five_basehttp() -> Any:
    return wrap(harness.make_app(), NoopBaseHTTP, 5)


def five_pure() -> Any:
    return wrap(harness.make_app(), NoopPure, 5)


def agno_jwt() -> Any:
    from agno.os.middleware import JWTMiddleware as AgnoJWT

    return with_middleware(Middleware(AgnoJWT, verification_keys=[SECRET], algorithm="HS256"))


def our_jwt() -> Any:
    from agentos_mw import JWTMiddleware

    return with_middleware(Middleware(JWTMiddleware, verification_keys=[SECRET], algorithm="HS256"))
