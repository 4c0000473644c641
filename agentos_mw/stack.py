"""``secure_stack()``: the recommended middleware order in one call.

Outermost first::

    client
      │
      ▼
    CORSMiddleware            answers preflights; adds CORS headers even to 401/403/429
    SecurityHeadersMiddleware hardening headers on every response, errors included
    RequestIDMiddleware       an id before anything can log or fail
    AccessLogMiddleware       sees the final status and the whole streamed body, 401s included
    MetricsMiddleware         counts every outcome, rejections included
    JWTMiddleware (+ RBAC)    identity, then scopes against the route map (unmapped="deny")
    RateLimitMiddleware       keyed by the authenticated user, by IP when anonymous
      │
      ▼
    your app

Each layer is optional: pass ``None``/``False`` to leave it out, ``True`` for its defaults, or a
mapping of keyword arguments for its constructor. ``trusted_proxies`` is shared by the layers that
need the client address.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from starlette.middleware import Middleware

from ._asgi import ASGIApp

Options = Mapping[str, Any] | bool | None


def _options(value: Options, name: str) -> dict[str, Any] | None:
    if value is None or value is False:
        return None
    if value is True:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{name} must be a mapping of options, True, False or None")


def _check_cors(options: dict[str, Any]) -> None:
    origins = list(options.get("allow_origins", ()))
    if "*" in origins and options.get("allow_credentials"):
        raise ValueError(
            "cors: allow_origins=['*'] with allow_credentials=True lets any site make "
            "credentialed requests; list the allowed origins explicitly"
        )
    if options.get("allow_origin_regex") in (".*", "^.*$") and options.get("allow_credentials"):
        raise ValueError("cors: a match-everything allow_origin_regex with credentials is unsafe")


def secure_stack(
    *,
    auth: Options = None,
    rbac: Options = True,
    rate_limit: Options = None,
    cors: Options = None,
    security_headers: Options = True,
    request_id: Options = True,
    access_log: Options = True,
    metrics: Options = False,
    trusted_proxies: Sequence[str] = (),
) -> list[Middleware]:
    """Middleware list, outermost first, for ``Starlette(middleware=...)``/``FastAPI(middleware=...)``.

    ``auth`` takes :class:`~agentos_mw.JWTMiddleware` options (``verification_keys``,
    ``jwks_url``, ...). ``rbac`` applies only with ``auth``: ``True`` enables the AgentOS default
    map with ``unmapped="deny"``; a mapping adds ``scope_mappings``, ``unmapped``,
    ``default_scopes``. ``rate_limit`` takes :class:`~agentos_mw.RateLimitMiddleware` options;
    its key defaults to the authenticated user (IP when anonymous) when ``auth`` is on.
    """
    cors_options = _options(cors, "cors")
    headers_options = _options(security_headers, "security_headers")
    request_id_options = _options(request_id, "request_id")
    access_log_options = _options(access_log, "access_log")
    metrics_options = _options(metrics, "metrics")
    auth_options = _options(auth, "auth")
    rbac_options = _options(rbac, "rbac")
    rate_options = _options(rate_limit, "rate_limit")
    proxies = list(trusted_proxies)

    stack: list[Middleware] = []
    if cors_options is not None:
        from starlette.middleware.cors import CORSMiddleware

        _check_cors(cors_options)
        stack.append(Middleware(CORSMiddleware, **cors_options))
    if headers_options is not None:
        from .headers import SecurityHeadersMiddleware

        stack.append(Middleware(SecurityHeadersMiddleware, **headers_options))
    if request_id_options is not None:
        from .observability import RequestIDMiddleware

        stack.append(Middleware(RequestIDMiddleware, **request_id_options))
    if access_log_options is not None:
        from .observability import AccessLogMiddleware

        access_log_options.setdefault("trusted_proxies", proxies)
        stack.append(Middleware(AccessLogMiddleware, **access_log_options))
    if metrics_options is not None:
        from .observability import MetricsMiddleware

        stack.append(Middleware(MetricsMiddleware, **metrics_options))
    if auth_options is not None:
        from .auth import JWTMiddleware

        if rbac_options is not None:
            auth_options.setdefault("authorization", True)
            auth_options.setdefault("unmapped", "deny")
            for key, value in rbac_options.items():
                auth_options.setdefault(key, value)
        stack.append(Middleware(JWTMiddleware, **auth_options))
    elif rbac_options and rbac is not True:
        raise ValueError("rbac options need auth: RBAC checks the scopes of an authenticated token")
    if rate_options is not None:
        from .ratelimit import RateLimitMiddleware

        rate_options.setdefault("trusted_proxies", proxies)
        if auth_options is not None:
            rate_options.setdefault("key", "user")
        stack.append(Middleware(RateLimitMiddleware, **rate_options))
    return stack


def apply_stack(app: Any, **options: Any) -> ASGIApp:
    """Install :func:`secure_stack` on ``app`` and return the app to serve.

    Starlette/FastAPI apps get the layers through ``add_middleware`` (so their own error handling
    stays outermost) and are returned as is; any other ASGI callable is wrapped directly.
    """
    stack = secure_stack(**options)
    if hasattr(app, "add_middleware") and hasattr(app, "user_middleware"):
        for middleware in reversed(stack):
            cls, args, kwargs = middleware
            app.add_middleware(cls, *args, **kwargs)
        return app  # type: ignore[no-any-return]
    wrapped: ASGIApp = app
    for middleware in reversed(stack):
        cls, args, kwargs = middleware
        wrapped = cls(wrapped, *args, **kwargs)
    return wrapped
