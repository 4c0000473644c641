"""From verified claims to request state: claim paths, scopes, and the identity objects.

Claim names may be dotted paths (``realm_access.roles``); a claim whose literal name contains
dots (Auth0's ``https://example.com/roles``) is found first. Scopes may be a list of strings
or an OAuth space-separated string (``"openid agents:read"``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

from starlette.authentication import AuthCredentials, BaseUser, UnauthenticatedUser

from .cache import MAX_AGE

Getter = Callable[[Mapping[str, Any]], Any]


def claim_getter(path: str) -> Getter:
    """A function reading claim ``path`` (dotted for nested objects) or ``None``."""
    if not isinstance(path, str) or not path or path.startswith(".") or path.endswith("."):
        raise ValueError(f"invalid claim name {path!r}")
    if "." not in path:
        return lambda claims: claims.get(path)
    parts = tuple(path.split("."))
    if "" in parts:
        raise ValueError(f"invalid claim path {path!r}")

    def get(claims: Mapping[str, Any]) -> Any:
        if path in claims:
            return claims[path]
        value: Any = claims
        for part in parts:
            if type(value) is not dict:
                return None
            value = value.get(part)
        return value

    return get


def scopes_from(value: Any) -> list[str]:
    """Scopes from a claim value: a space-separated string or a list (non-strings dropped)."""
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str) and item]
    return []


class JWTUser(BaseUser):
    """``request.user`` for a verified token; ``claims`` is a read-only view of the cached
    claims (nested values included: do not mutate them; ``request.state.claims`` is the
    request's own copy)."""

    __slots__ = ("claims", "scopes", "user_id")

    def __init__(self, user_id: str | None, claims: Mapping[str, Any], scopes: list[str]) -> None:
        self.user_id = user_id
        self.claims = claims
        self.scopes = scopes

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.user_id or ""

    @property
    def identity(self) -> str:
        return self.user_id or ""

    def __repr__(self) -> str:
        return f"JWTUser(user_id={self.user_id!r})"


class Identity:
    """Everything a verified token puts on a request, built once per token and cached."""

    __slots__ = (
        "audience_is_container",
        "auth",
        "claims",
        "dependencies",
        "expires_at",
        "fixed",
        "granted",
        "nested",
        "scopes",
        "session_state",
        "user",
    )

    def __init__(
        self,
        fixed: dict[str, Any],
        claims: dict[str, Any],
        scopes: list[str],
        dependencies: dict[str, Any],
        session_state: dict[str, Any],
        expires_at: float,
    ) -> None:
        self.fixed = fixed
        self.claims = claims
        self.scopes = scopes
        self.dependencies = dependencies
        self.session_state = session_state
        self.expires_at = expires_at
        self.user = JWTUser(fixed["user_id"], MappingProxyType(claims), scopes)
        self.auth = AuthCredentials(scopes)
        #: The scope set RBAC checks (rbac.grammar.granted_scopes), filled on first use.
        self.granted: frozenset[str] | None = None
        #: The containers inside each state value, to copy per request (precomputed per token).
        self.nested = (
            _containers(claims),
            _containers(dependencies),
            _containers(session_state),
        )
        audience = fixed["audience"]
        self.audience_is_container = type(audience) is list or type(audience) is dict

    def inject(self, scope: Any, state: dict[str, Any]) -> None:
        """Fill ``request.state``; mutable values are copies, nested ones included, so an
        endpoint (or an agent updating ``session_state``) cannot change the cached identity
        that later requests with the same token receive."""
        state.update(self.fixed)
        state["scopes"] = self.scopes.copy()
        in_claims, in_dependencies, in_session_state = self.nested
        # _copy only where containers are nested: a call less per value on most tokens
        state["claims"] = _copy(self.claims, in_claims) if in_claims else self.claims.copy()
        state["dependencies"] = (
            _copy(self.dependencies, in_dependencies)
            if in_dependencies
            else self.dependencies.copy()
        )
        state["session_state"] = (
            _copy(self.session_state, in_session_state)
            if in_session_state
            else self.session_state.copy()
        )
        if self.audience_is_container:
            state["audience"] = _json_copy(self.fixed["audience"])
        scope["user"] = self.user
        scope["auth"] = self.auth


Containers = tuple[tuple[Any, Any, bool], ...]


def _containers(values: dict[str, Any] | list[Any]) -> Containers:
    """``(key, value, flat)`` for each dict or list directly inside ``values``; ``flat`` when
    the container holds no further containers (a plain ``copy()`` is then a full copy)."""
    items = values.items() if type(values) is dict else enumerate(values)
    found = []
    for key, value in items:
        kind = type(value)
        if kind is dict or kind is list:
            inner = value.values() if kind is dict else value
            flat = not any(type(item) is dict or type(item) is list for item in inner)
            found.append((key, value, flat))
    return tuple(found)


def _copy(values: Any, containers: Containers) -> Any:
    """A copy of ``values`` that shares no dict or list with it (scalars are immutable)."""
    out = values.copy()
    for key, value, flat in containers:
        out[key] = value.copy() if flat else _json_copy(value)
    return out


def _json_copy(value: Any) -> Any:
    """A deep copy of decoded JSON (dicts, lists and immutable scalars), much cheaper than
    ``copy.deepcopy``: scalars are shared, only containers are rebuilt."""
    out = value.copy()
    items = value.items() if type(value) is dict else enumerate(value)
    for key, item in items:
        kind = type(item)
        if kind is dict or kind is list:
            out[key] = _json_copy(item)
    return out


class ClaimMapper:
    """Precomputed claim readers; :meth:`identity` builds the cached :class:`Identity`."""

    def __init__(
        self,
        *,
        user_id_claim: str,
        session_id_claim: str,
        scopes_claim: str | Iterable[str],
        audience_claim: str,
        dependencies_claims: Iterable[str] | None,
        session_state_claims: Iterable[str] | None,
        authorization_enabled: bool,
        admin_scope: str,
    ) -> None:
        self._user_id = claim_getter(user_id_claim)
        self._session_id = claim_getter(session_id_claim)
        names = [scopes_claim] if isinstance(scopes_claim, str) else list(scopes_claim)
        if not names:
            raise ValueError("scopes_claim must name at least one claim")
        self._scopes = tuple(claim_getter(name) for name in names)
        self._audience = claim_getter(audience_claim)
        self._dependencies = _getters(dependencies_claims, "dependencies_claims")
        self._session_state = _getters(session_state_claims, "session_state_claims")
        self._authorization_enabled = authorization_enabled
        self._admin_scope = admin_scope

    def identity(self, token: str, claims: dict[str, Any], now: float) -> Identity:
        user_id = _identifier(self._user_id(claims))
        if len(self._scopes) == 1:
            scopes = scopes_from(self._scopes[0](claims))
        else:
            scopes = []
            for getter in self._scopes:
                for scope in scopes_from(getter(claims)):
                    if scope not in scopes:
                        scopes.append(scope)
        fixed = {
            "authenticated": True,
            "user_id": user_id,
            "session_id": _identifier(self._session_id(claims)),
            "token": token,
            "audience": self._audience(claims),
            "authorization_enabled": self._authorization_enabled,
            "admin_scope": self._admin_scope,
        }
        exp = claims.get("exp")
        expires_at = now + MAX_AGE
        if exp is not None and exp < expires_at:
            expires_at = float(exp)
        return Identity(
            fixed,
            claims,
            scopes,
            _pick(self._dependencies, claims),
            _pick(self._session_state, claims),
            expires_at,
        )

    def anonymous(self, scope: Any, state: dict[str, Any]) -> None:
        """State for a request that passes without a token (optional authentication)."""
        state["authenticated"] = False
        state["user_id"] = None
        state["session_id"] = None
        state["scopes"] = []
        state["claims"] = {}
        state["token"] = None
        state["authorization_enabled"] = self._authorization_enabled
        state["admin_scope"] = self._admin_scope
        scope["user"] = UnauthenticatedUser()
        scope["auth"] = AuthCredentials()


def _identifier(value: Any) -> str | None:
    """User and session ids are strings; an integer id is accepted as its decimal string."""
    if isinstance(value, str):
        return value
    if type(value) is int:
        return str(value)
    return None


def _getters(names: Iterable[str] | None, option: str) -> tuple[tuple[str, Getter], ...]:
    if names is None:
        return ()
    if isinstance(names, str):
        raise TypeError(f"{option} must be a list of claim names, not a single string")
    return tuple((name, claim_getter(name)) for name in names)


def _pick(getters: tuple[tuple[str, Getter], ...], claims: dict[str, Any]) -> dict[str, Any]:
    picked: dict[str, Any] = {}
    if not getters:
        return picked
    for name, getter in getters:
        value = getter(claims)
        if value is not None:
            picked[name] = value
    return picked
