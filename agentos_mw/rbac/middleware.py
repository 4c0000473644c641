"""RBACMiddleware: checks the caller's scopes against the route map before the app runs.

It authenticates nobody: the identity comes from whatever layer ran before it, read from
``scope["state"]["scopes"]`` (set by :class:`~agentos_mw.JWTMiddleware` or any layer that follows
the same contract) or, when that is absent, from ``scope["auth"].scopes`` (Starlette's
``AuthenticationMiddleware``). A route that needs scopes answers 401 when there is no identity
and 403 when the scopes fall short; routes mapped to ``[]`` pass for everyone.

``unmapped="allow"`` (the default, Agno's behaviour) lets any caller through on a route the map
does not mention; ``unmapped="deny"`` is the secure choice: an endpoint added later, or a typo in
a mapping, then fails closed (only the admin scope passes) instead of open.

Websocket handshakes are checked as ``GET`` requests on their path (a handshake is an HTTP
``GET``); lifespan scopes and CORS preflights (``OPTIONS`` with ``Access-Control-Request-Method``)
pass untouched.

Mapping keys match the route path (``root_path`` removed), so an app mounted under a prefix
keeps its map. When the middleware wraps an *outer* app that mounts the mapped app under a
prefix, set ``path_prefix="/api"``: paths under it are matched without it, every other path
counts as unmapped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .._asgi import ASGIApp, Receive, Scope, Send, checked_method, get_state, send_error
from ..paths import PathSet, route_path
from .grammar import granted_scopes
from .policy import DEFAULT_LISTING_RESOURCES, Decision, RBACPolicy

logger = logging.getLogger("agentos_mw.rbac")


def caller_scopes(scope: Scope) -> frozenset[str] | None:
    """The caller's granted scopes, or ``None`` when no authentication layer vouched for one."""
    state = scope.get("state")
    if state is not None:
        if state.get("authenticated") is False:
            return None
        if "scopes" in state:
            return granted_scopes(state["scopes"])
    auth = scope.get("auth")
    if auth is not None and hasattr(auth, "scopes"):
        user = scope.get("user")
        if user is not None and getattr(user, "is_authenticated", True) is False:
            return None
        return granted_scopes(auth.scopes)
    if state is not None and state.get("authenticated") is True:
        return frozenset()
    return None


class RBACMiddleware:
    """Scope-based authorization against ``"METHOD /path"`` mappings (AgentOS defaults built in).

    See :mod:`agentos_mw.rbac.policy` for the mapping semantics.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        scope_mappings: Mapping[str, Sequence[str]] | None = None,
        admin_scope: str | Sequence[str] | None = None,
        unmapped: str = "allow",
        default_scopes: Sequence[str] | None = None,
        use_default_mappings: bool = True,
        excluded_route_paths: Iterable[str] | None = None,
        listing_resources: Iterable[str] = DEFAULT_LISTING_RESOURCES,
        realm: str = "api",
        path_prefix: str = "",
    ) -> None:
        self.app = app
        if not isinstance(path_prefix, str) or (
            path_prefix and (not path_prefix.startswith("/") or path_prefix.endswith("/"))
        ):
            raise ValueError("path_prefix must be '' or start with '/' and not end with '/'")
        self._prefix = path_prefix
        self.policy = RBACPolicy(
            scope_mappings,
            admin_scope=admin_scope,
            unmapped=unmapped,
            default_scopes=default_scopes,
            use_default_mappings=use_default_mappings,
            listing_resources=listing_resources,
            realm=realm,
        )
        self.admin_scope = self.policy.admin_scopes[0]
        self._excluded = PathSet(excluded_route_paths or ())
        self._has_excluded = len(self._excluded) > 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = checked_method(scope)
        if method is None:  # lifespan, CORS preflight
            await self.app(scope, receive, send)
            return
        path = route_path(scope)
        decision = self.authorize(scope, method, path)
        if decision is None or decision.allowed:
            await self.app(scope, receive, send)
            return
        await self.deny(scope, send, method, decision)

    def authorize(self, scope: Scope, method: str, path: str) -> Decision | None:
        """Decide ``method`` on route ``path`` and fill ``request.state``; ``None`` for an
        excluded path (passes untouched). The caller answers a refusal with :meth:`deny`.

        ``JWTMiddleware(authorization=True)`` calls this inline after authenticating (it has
        the checked method and route path already) rather than awaiting a wrapped
        ``RBACMiddleware``: one coroutine layer and a repeated preamble fewer per request.
        """
        if self._has_excluded and self._excluded.matches(method, path):
            return None
        return self.apply(get_state(scope), method, path, caller_scopes(scope))

    def apply(
        self, state: dict[str, Any], method: str, path: str, granted: frozenset[str] | None
    ) -> Decision:
        """:meth:`authorize` for a caller whose ``granted`` scopes are already known (what
        :func:`caller_scopes` would read from the scope) and whose state is ``state``."""
        if self._prefix:
            prefix = self._prefix
            if path == prefix or path.startswith(prefix + "/"):
                decision = self.policy.decide(method, path[len(prefix) :] or "/", granted)
            else:
                decision = self.policy.decide_unmapped(granted)
        else:
            decision = self.policy.decide(method, path, granted)
        state["authorization_enabled"] = True
        state["admin_scope"] = self.admin_scope
        state["admin_scopes"] = self.policy.admin_scopes
        state["required_scopes"] = list(decision.required_scopes)
        if decision.allowed and decision.accessible_ids is not None:
            state["accessible_resource_ids"] = set(decision.accessible_ids)
        return decision

    async def deny(self, scope: Scope, send: Send, method: str, decision: Decision) -> None:
        """Answer a refused :meth:`authorize` decision (401 or 403, fixed message)."""
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("denied %s on %s (status %d)", method, decision.key, decision.status)
        await send_error(scope, send, decision.status, decision.detail, decision.headers)
