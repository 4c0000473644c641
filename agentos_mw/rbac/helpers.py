"""Scope checks inside endpoints: ``has_scope``, ``accessible_ids`` and ``RequireScopes``.

They read the same identity :class:`~agentos_mw.rbac.RBACMiddleware` reads (``request.state.scopes``
or ``request.auth.scopes``) and apply the same grammar, so an endpoint and the route map never
disagree about what a scope means. No FastAPI import: ``RequireScopes`` is a plain callable that
FastAPI's ``Depends`` accepts, and it raises Starlette's exceptions, which FastAPI handles.
"""

from __future__ import annotations

from functools import lru_cache

from starlette.exceptions import HTTPException, WebSocketException
from starlette.requests import HTTPConnection

from .._asgi import WS_POLICY_VIOLATION, latin1_header
from .grammar import DEFAULT_ADMIN_SCOPE, WILDCARD, check_scope_token
from .middleware import caller_scopes
from .policy import INSUFFICIENT, NOT_AUTHENTICATED, Requirement

_DEFAULT_ADMINS = frozenset({DEFAULT_ADMIN_SCOPE})


@lru_cache(maxsize=512)
def _requirement(scope: str, admins: frozenset[str]) -> Requirement:
    return Requirement(scope, admins)


def _admins(conn: HTTPConnection) -> frozenset[str]:
    state = conn.scope.get("state") or {}
    many = state.get("admin_scopes")
    if isinstance(many, (tuple, list)) and many:
        return frozenset(s for s in many if isinstance(s, str))
    one = state.get("admin_scope")
    return frozenset({one}) if isinstance(one, str) and one else _DEFAULT_ADMINS


def _allowed(
    granted: frozenset[str], admins: frozenset[str], scope: str, resource_id: str | None = None
) -> bool:
    if not admins.isdisjoint(granted):
        return True
    requirement = _requirement(scope, admins)
    if not requirement.accept.isdisjoint(granted):
        return True
    return bool(
        resource_id
        and requirement.prefix
        and requirement.prefix + resource_id + requirement.suffix in granted
    )


def has_scope(request: HTTPConnection, scope: str, *, resource_id: str | None = None) -> bool:
    """True when the caller's scopes satisfy ``scope`` (``"agents:a1:run"``, ``"agents:run"``).

    ``resource_id`` lets a per-resource scope satisfy a global requirement for that one
    resource: ``has_scope(request, "agents:run", resource_id="a1")`` accepts ``agents:a1:run``.
    """
    granted = caller_scopes(request.scope)
    if granted is None or not isinstance(scope, str):
        return False
    return _allowed(granted, _admins(request), scope, resource_id)


def accessible_ids(request: HTTPConnection, resource: str, action: str = "read") -> set[str]:
    """Ids of ``resource`` the caller may ``action``: ``{"*"}`` for all (admin, global or
    wildcard scope), the ids of its ``resource:<id>:action`` scopes otherwise, or an empty set."""
    granted = caller_scopes(request.scope)
    if granted is None:
        return set()
    admins = _admins(request)
    scope = f"{resource}:{action}"
    if _allowed(granted, admins, scope):
        return {WILDCARD}
    return set(_requirement(scope, admins).resource_ids(granted))


class RequireScopes:
    """FastAPI dependency: every listed scope is required (``Depends(RequireScopes("agents:run"))``).

    With ``resource_id_param="agent_id"`` the path parameter of that name is the resource id, so
    ``agents:<id>:run`` also satisfies ``agents:run`` on that route. Answers 401 without an
    identity and 403 (with ``WWW-Authenticate: Bearer error="insufficient_scope"``) otherwise.
    """

    def __init__(
        self, *scopes: str, resource_id_param: str | None = None, realm: str = "api"
    ) -> None:
        if not scopes:
            raise ValueError("RequireScopes needs at least one scope")
        if (
            not isinstance(realm, str)
            or not realm
            or latin1_header(realm) is None
            or '"' in realm
            or "\\" in realm
        ):
            raise ValueError("realm must be Latin-1 text without quotes, backslashes or controls")
        self._challenge = f'Bearer realm="{realm}"'
        self.scopes = tuple(check_scope_token(s, "RequireScopes scope") for s in scopes)
        self.resource_id_param = resource_id_param
        self._detail = f"{INSUFFICIENT}. Required scope(s): {', '.join(self.scopes)}"
        self._header = f'Bearer error="insufficient_scope", scope="{" ".join(self.scopes)}"'

    def __call__(self, request: HTTPConnection) -> None:
        granted = caller_scopes(request.scope)
        websocket = request.scope["type"] == "websocket"
        if granted is None:
            if websocket:
                raise WebSocketException(WS_POLICY_VIOLATION, NOT_AUTHENTICATED)
            raise HTTPException(
                401, NOT_AUTHENTICATED, headers={"WWW-Authenticate": self._challenge}
            )
        resource_id: str | None = None
        if self.resource_id_param is not None:
            value = request.path_params.get(self.resource_id_param)
            resource_id = value if isinstance(value, str) else None
        admins = _admins(request)
        for scope in self.scopes:
            if not _allowed(granted, admins, scope, resource_id):
                if websocket:
                    raise WebSocketException(WS_POLICY_VIOLATION, INSUFFICIENT)
                raise HTTPException(403, self._detail, headers={"WWW-Authenticate": self._header})
