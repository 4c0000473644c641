"""``JWTMiddleware``: JWT authentication for AgentOS, FastAPI and Starlette, in pure ASGI.

Accepts the constructor of Agno's ``JWTMiddleware`` (switching is one import line) and adds
JWKS URLs, a verified-token cache, websocket handshake authentication, cookie CSRF defence,
revocation and custom-mapping hooks. Differences from Agno worth knowing: ``algorithm``
defaults to the key's own type instead of ``RS256``; tokens need ``exp`` unless
``required_claims`` says otherwise; ``Authorization`` must use the ``Bearer`` scheme; secrets
are never read from environment variables; exclusion patterns use :mod:`agentos_mw.paths`
(``*`` is one segment, ``**`` many) rather than ``fnmatch``.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.authentication import AuthCredentials, UnauthenticatedUser

from .._asgi import ASGIApp, Receive, Scope, Send, checked_method, get_state, send_error
from ..paths import PathSet, route_path
from . import errors
from .cache import TokenCache
from .claims import ClaimMapper, Identity
from .errors import AuthError
from .jwks_url import RemoteJWKS
from .keys import Key, KeyRing, load_jwks_file, load_key, normalize_algorithms
from .session import ExpiringSession, deadline_of
from .tokens import SAFE_METHODS, CSRFGuard, TokenExtractor, TokenSource
from .verify import Verifier, media_type

if TYPE_CHECKING:
    from ..rbac import RBACMiddleware
    from ..rbac.policy import Decision

logger = logging.getLogger("agentos_mw.auth")

DEFAULT_EXCLUDED_PATHS = (
    "/",
    "/health",
    "/info",
    "/docs",
    "/redoc",
    "/openapi.json",
    "/docs/oauth2-redirect",
)
DEFAULT_ADMIN_SCOPE = "agent_os:admin"

_ANONYMOUS_USER = UnauthenticatedUser()
_NO_CREDENTIALS = AuthCredentials()

RevocationCheck = Callable[[dict[str, Any]], Awaitable[bool]]
OnAuth = Callable[[dict[str, Any], dict[str, Any]], Any]


class JWTMiddleware:
    """Authenticate every HTTP request and websocket handshake with a JWT.

    Verified identities land in ``request.state`` (``authenticated``, ``user_id``,
    ``session_id``, ``scopes``, ``claims``, ``token``, ``audience``, ``dependencies``,
    ``session_state``, ``authorization_enabled``, ``admin_scope``) and in
    ``request.user``/``request.auth`` as Starlette's ``AuthenticationMiddleware`` would.

    Hooks:

    * ``revocation_check(claims) -> Awaitable[bool]``: asked on every authenticated request
      (cached tokens too); ``True`` means revoked (401). If it raises, the request gets 503.
    * ``on_auth(claims, state)``: runs after the state is filled, sync or async, for custom
      claim mapping (``state["tenant"] = claims["org"]``). Returning ``False`` rejects the
      token (401 "Invalid token"); exceptions propagate like the app's own.

    ``websocket_expiry`` (default on): a websocket session ends with its token; the first
    client message after ``exp`` (plus ``leeway``) closes it with code 1008, and with a
    ``revocation_check`` client messages re-ask it every ``websocket_recheck_interval`` seconds
    (see :mod:`agentos_mw.auth.session`).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        verification_keys: Sequence[Any] | None = None,
        jwks_file: str | Path | None = None,
        algorithm: str | None = None,
        validate: bool = True,
        authorization: bool | None = None,
        token_source: TokenSource | str = TokenSource.HEADER,
        token_header_key: str = "Authorization",
        cookie_name: str = "access_token",
        scopes_claim: str | Sequence[str] = "scopes",
        user_id_claim: str = "sub",
        session_id_claim: str = "session_id",
        audience_claim: str = "aud",
        audience: str | Sequence[str] | None = None,
        verify_audience: bool | None = None,
        issuer: str | Sequence[str] | None = None,
        token_types: Sequence[str] | None = None,
        dependencies_claims: Sequence[str] | None = None,
        session_state_claims: Sequence[str] | None = None,
        scope_mappings: Mapping[str, Sequence[str]] | None = None,
        excluded_route_paths: Sequence[str] | None = None,
        admin_scope: str | None = None,
        # beyond Agno
        algorithms: Sequence[str] | None = None,
        jwks_url: str | None = None,
        jwks_refresh_interval: float = 300.0,
        jwks_cooldown: float = 30.0,
        jwks_timeout: float = 5.0,
        leeway: float = 10.0,
        required_claims: Sequence[str] = ("exp",),
        max_token_bytes: int = 8192,
        optional_auth_paths: Sequence[str] | None = None,
        revocation_check: RevocationCheck | None = None,
        on_auth: OnAuth | None = None,
        cache_size: int = 10_000,
        websocket_query_token: bool = False,
        websocket_expiry: bool = True,
        websocket_recheck_interval: float = 30.0,
        csrf_protection: bool = True,
        trusted_origins: Sequence[str] | None = None,
        realm: str = "api",
        unmapped: str = "allow",
        default_scopes: list[str] | None = None,
    ) -> None:
        self.app = app
        allowed = normalize_algorithms(algorithm, algorithms)
        if not isinstance(validate, bool):
            raise TypeError("validate must be a bool")
        if isinstance(verification_keys, (str, bytes)):
            raise TypeError("verification_keys must be a list of keys, not a single key")
        static: list[Key] = [
            load_key(raw, allowed, i) for i, raw in enumerate(verification_keys or ())
        ]
        if jwks_file is not None:
            static.extend(load_jwks_file(jwks_file, allowed))
        self._cache: TokenCache[Identity] = TokenCache(cache_size)
        remote = (
            RemoteJWKS(
                jwks_url,
                allowed=allowed,
                refresh_interval=jwks_refresh_interval,
                cooldown=jwks_cooldown,
                timeout=jwks_timeout,
                on_change=self._cache.clear,
            )
            if jwks_url is not None
            else None
        )
        if validate and not static and remote is None:
            raise ValueError(
                "JWTMiddleware needs verification_keys, jwks_file or jwks_url "
                "(or validate=False for development only)"
            )
        if not validate:
            logger.warning(
                "JWTMiddleware(validate=False): token signatures are NOT verified; "
                "anyone can forge a token. Never use this in production."
            )
        if not isinstance(leeway, (int, float)) or isinstance(leeway, bool) or leeway < 0:
            raise ValueError("leeway must be a non-negative number of seconds")
        if not isinstance(max_token_bytes, int) or max_token_bytes < 64:
            raise ValueError("max_token_bytes must be an integer >= 64")
        if isinstance(required_claims, str) or not all(isinstance(c, str) for c in required_claims):
            raise TypeError("required_claims must be a list of claim names")
        audience_value = _str_or_list(audience, "audience")
        issuer_value = _str_or_list(issuer, "issuer")
        if verify_audience is None:
            verify_audience = audience_value is not None
        self._audience_from_app = bool(verify_audience) and audience_value is None

        if authorization is None:
            authorization = scope_mappings is not None
        self.authorization = bool(authorization)
        self.admin_scope = DEFAULT_ADMIN_SCOPE if admin_scope is None else admin_scope
        if not isinstance(self.admin_scope, str) or not self.admin_scope:
            raise ValueError("admin_scope must be a non-empty string")

        self._verifier = Verifier(
            static_keys=KeyRing(static),
            remote=remote,
            validate=validate,
            leeway=float(leeway),
            required_claims=list(required_claims),
            audience=audience_value,
            audience_claim=audience_claim,
            verify_audience=bool(verify_audience),
            issuer=issuer_value,
            max_token_bytes=max_token_bytes,
            token_types=_token_types(token_types),
        )
        if remote is not None and not verify_audience and issuer_value is None:
            logger.warning(
                "jwks_url without audience or issuer: any token the identity provider signs "
                "(for any of its applications) is accepted; set audience= and/or issuer="
            )
        self._mapper = ClaimMapper(
            user_id_claim=user_id_claim,
            session_id_claim=session_id_claim,
            scopes_claim=scopes_claim,
            audience_claim=audience_claim,
            dependencies_claims=dependencies_claims,
            session_state_claims=session_state_claims,
            authorization_enabled=self.authorization,
            admin_scope=self.admin_scope,
        )
        self._extractor = TokenExtractor(
            token_source, token_header_key, cookie_name, websocket_query_token=websocket_query_token
        )
        if not isinstance(websocket_expiry, bool):
            raise TypeError("websocket_expiry must be a bool")
        if (
            isinstance(websocket_recheck_interval, bool)
            or not isinstance(websocket_recheck_interval, (int, float))
            or not websocket_recheck_interval > 0
        ):
            raise ValueError("websocket_recheck_interval must be a positive number of seconds")
        self._websocket_leeway = float(leeway) if websocket_expiry else None
        self._websocket_recheck = float(websocket_recheck_interval)
        self._csrf = CSRFGuard(trusted_origins) if csrf_protection else None
        self._excluded = PathSet(
            DEFAULT_EXCLUDED_PATHS if excluded_route_paths is None else excluded_route_paths
        )
        self._optional = PathSet(optional_auth_paths or ())
        self._has_optional = len(self._optional) > 0
        if revocation_check is not None and not callable(revocation_check):
            raise TypeError("revocation_check must be an async callable taking the claims")
        if on_auth is not None and not callable(on_auth):
            raise TypeError("on_auth must be a callable (claims, state)")
        self._revocation_check = revocation_check
        self._on_auth = on_auth
        if not isinstance(realm, str) or not realm or '"' in realm or "\\" in realm:
            raise ValueError("realm must be a non-empty string without quotes or backslashes")
        challenge = f'Bearer realm="{realm}"'.encode("latin-1")
        self._challenges: dict[str | None, list[tuple[bytes, bytes]]] = {
            None: [(b"www-authenticate", challenge)],
            "invalid_token": [(b"www-authenticate", challenge + b', error="invalid_token"')],
            "invalid_request": [(b"www-authenticate", challenge + b', error="invalid_request"')],
        }

        self._rbac: RBACMiddleware | None = None
        if self.authorization:
            from ..rbac import RBACMiddleware  # imported here so JWT works without RBAC
            from ..rbac.grammar import granted_scopes

            self._granted_scopes = granted_scopes

            # called inline (authorize/deny) after authentication, not awaited as a layer
            self._rbac = RBACMiddleware(
                app,
                scope_mappings=scope_mappings,
                admin_scope=self.admin_scope,
                unmapped=unmapped,
                default_scopes=default_scopes,
                realm=realm,
            )
        elif scope_mappings is not None:
            logger.warning("scope_mappings is ignored because authorization=False")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = checked_method(scope)
        if method is None:  # lifespan, CORS preflight
            await self.app(scope, receive, send)
            return
        scope_type = scope["type"]

        path = route_path(scope)
        if self._excluded.matches(method, path):
            if "user" not in scope:
                scope["user"] = _ANONYMOUS_USER
                scope["auth"] = _NO_CREDENTIALS
            await self.app(scope, receive, send)
            return

        rbac = self._rbac
        decision: Decision | None = None
        session_identity: Identity | None = None
        try:
            token, from_cookie = self._extractor.extract(scope)
            if token is not None:
                if (
                    from_cookie
                    and self._csrf is not None
                    and (scope_type == "websocket" or method not in SAFE_METHODS)
                    and not self._csrf.allows(scope)
                ):
                    raise AuthError(403, errors.CROSS_SITE, None)
                now = time.time()
                identity = self._cache.get(token, now)
                if identity is None:
                    identity = await self._authenticate(scope, token, now)
                if self._revocation_check is not None:
                    await self._check_revoked(identity)
                state = scope.get("state")
                if state is None:
                    state = scope["state"] = {}
                identity.inject(scope, state)
                if scope_type == "websocket" and self._websocket_leeway is not None:
                    session_identity = identity
                if self._on_auth is not None:
                    result = self._on_auth(state["claims"], state)
                    if inspect.isawaitable(result):
                        result = await result
                    if result is False:
                        raise errors.invalid()
                if rbac is not None:
                    if self._on_auth is None:  # the state holds the identity's scopes as is
                        granted = identity.granted
                        if granted is None:
                            granted = identity.granted = self._granted_scopes(identity.scopes)
                        decision = rbac.apply(state, method, path, granted)
                    else:  # the hook may have changed them: read them back as RBAC does
                        decision = rbac.authorize(scope, method, path)
            elif not (self._has_optional and self._optional.matches(method, path)):
                raise AuthError(401, self._extractor.missing_detail, None)
        except AuthError as exc:
            await self._reject(scope, send, exc)
            return
        if token is None:  # optional authentication, no token sent: anonymous, no RBAC
            self._mapper.anonymous(scope, get_state(scope))
            await self.app(scope, receive, send)
            return
        if rbac is not None and decision is not None and not decision.allowed:
            await rbac.deny(scope, send, method, decision)
            return
        if session_identity is not None:
            session = self._session(receive, send, session_identity)
            if session is not None:
                await self.app(scope, session.receive, session.send)
                return
        await self.app(scope, receive, send)

    def _session(self, receive: Receive, send: Send, identity: Identity) -> ExpiringSession | None:
        """The guard that ends a websocket session with its token (expiry, revocation)."""
        assert self._websocket_leeway is not None
        deadline = deadline_of(identity.claims, self._websocket_leeway)
        check = self._revocation_check
        if deadline is None and check is None:
            return None
        still_valid = None
        if check is not None:
            claims = identity.claims

            async def still_valid() -> bool:
                return not await check(claims)

        return ExpiringSession(receive, send, deadline, still_valid, self._websocket_recheck)

    async def _authenticate(self, scope: Scope, token: bytes, now: float) -> Identity:
        if self._audience_from_app:
            self._resolve_app_audience(scope)
        claims = await self._verifier.verify(token)
        identity = self._mapper.identity(token.decode("ascii"), claims, now)
        self._cache.put(token, identity, now)
        return identity

    def _resolve_app_audience(self, scope: Scope) -> None:
        """``verify_audience=True`` without ``audience``: the AgentOS id, as Agno does."""
        state = getattr(scope.get("app"), "state", None)
        os_id = getattr(state, "agent_os_id", None)
        if not isinstance(os_id, str) or not os_id:
            logger.error(
                "verify_audience=True but no audience is set and app.state.agent_os_id is missing"
            )
            raise errors.invalid(errors.BAD_AUDIENCE)
        self._verifier.set_audience(os_id)
        self._audience_from_app = False

    async def _check_revoked(self, identity: Identity) -> None:
        assert self._revocation_check is not None
        try:
            revoked = await self._revocation_check(identity.claims)
        except Exception as exc:
            logger.error("revocation_check failed (%s); refusing the request", type(exc).__name__)
            raise AuthError(503, errors.REVOCATION_UNAVAILABLE, None) from None
        if revoked:
            raise errors.invalid(errors.REVOKED)

    async def _reject(self, scope: Scope, send: Send, exc: AuthError) -> None:
        logger.debug("authentication failed: %s", exc.detail)
        headers = self._challenges[exc.error] if exc.status in (400, 401) else ()
        await send_error(scope, send, exc.status, exc.detail, headers)

    @property
    def jwks(self) -> RemoteJWKS | None:
        """The JWKS URL client (``await mw.jwks.refresh()`` warms it), or ``None``."""
        return self._verifier.remote

    def clear_cache(self) -> None:
        """Forget every verified token (e.g. after rotating ``verification_keys`` yourself)."""
        self._cache.clear()


def _token_types(values: Sequence[str] | None) -> frozenset[str] | None:
    if values is None:
        return None
    if isinstance(values, str):
        raise TypeError('token_types must be a list of "typ" values, e.g. ["JWT", "at+jwt"]')
    types = set()
    for value in values:
        text = media_type(value)
        if not text:
            raise ValueError("token_types must be a non-empty list of non-empty strings")
        types.add(text)
    if not types:
        raise ValueError("token_types must be a non-empty list of non-empty strings")
    return frozenset(types)


def _str_or_list(value: str | Iterable[str] | None, name: str) -> str | list[str] | None:
    if value is None or isinstance(value, str):
        if value == "":
            raise ValueError(f"{name} must not be empty")
        return value
    values = list(value)
    if not values or not all(isinstance(v, str) and v for v in values):
        raise ValueError(f"{name} must be a string or a non-empty list of strings")
    return values
