"""The complete ``secure_stack()`` around a small Starlette app, plus the checks every hostile
test applies to what the stack sent.

The app has a JSON route, an SSE stream, a websocket and public routes; it records the identity
it was handed so a test can prove that no forged, expired or foreign token ever reached it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from agentos_mw import secure_stack
from agentos_mw._asgi import ASGIApp, Message

SECRET = "hostile-suite-secret-" + "h" * 48
FORGER_SECRET = "not-the-secret-" + "f" * 48
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_PUBLIC_PEM = RSA_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)
ATTACKER_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)

#: Subjects of tokens the stack must accept; anything else reaching the app is a breach.
GOOD_SUBJECTS = frozenset({"alice", "bob"})
PUBLIC_PATHS = frozenset({"/", "/health"})
ORIGIN = "https://ui.example"
ALL_SCOPES = ["agents:read", "agents:run", "ws:connect"]


def claims(sub: str = "alice", scopes: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {"sub": sub, "iat": now, "exp": now + 600}
    base["scopes"] = ALL_SCOPES if scopes is None else scopes
    base.update(extra)
    return base


def good_token(sub: str = "alice", scopes: list[str] | None = None, **extra: Any) -> str:
    return jwt.encode(claims(sub, scopes, **extra), SECRET, algorithm="HS256")


def rsa_token(sub: str = "bob") -> str:
    return jwt.encode(claims(sub), RSA_KEY, algorithm="RS256")


def _b64(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hs256(header: dict[str, Any], payload: dict[str, Any], key: bytes) -> str:
    """Sign by hand: PyJWT refuses to HMAC with a PEM key, which an attacker does not care about."""
    import hashlib
    import hmac
    import json

    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    mac = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def bad_tokens() -> dict[str, str]:
    """Tokens the stack must refuse, by attack (RFC 8725 and friends)."""
    mallory = claims("mallory")
    now = int(time.time())
    import json

    none_header = _b64(b'{"alg":"none","typ":"JWT"}')
    unsigned = f"{none_header}.{_b64(json.dumps(mallory).encode())}."
    return {
        "wrong-secret": jwt.encode(mallory, FORGER_SECRET, algorithm="HS256"),
        "alg-none": unsigned,
        "alg-None-sig": unsigned + "c2ln",
        "hs-with-rsa-public-key": _hs256({"alg": "HS256", "typ": "JWT"}, mallory, RSA_PUBLIC_PEM),
        "attacker-rsa": jwt.encode(mallory, ATTACKER_RSA, algorithm="RS256"),
        "jku-injection": jwt.encode(
            mallory,
            ATTACKER_RSA,
            algorithm="RS256",
            headers={"jku": "https://evil.example/jwks.json", "kid": "../../dev/null"},
        ),
        "kid-sql": jwt.encode(
            mallory, FORGER_SECRET, algorithm="HS256", headers={"kid": "' OR 1=1 --"}
        ),
        "expired": jwt.encode(
            {**claims("mallory"), "exp": now - 3600, "iat": now - 7200}, SECRET, algorithm="HS256"
        ),
        "not-yet-valid": jwt.encode(
            {**claims("mallory"), "nbf": now + 3600}, SECRET, algorithm="HS256"
        ),
        "no-exp": jwt.encode({"sub": "mallory", "scopes": ALL_SCOPES}, SECRET, algorithm="HS256"),
        "exp-as-string": _hs256(
            {"alg": "HS256", "typ": "JWT"}, {**mallory, "exp": str(now + 600)}, SECRET.encode()
        ),
        "sub-as-object": _hs256(
            {"alg": "HS256", "typ": "JWT"}, {**mallory, "sub": {"id": "mallory"}}, SECRET.encode()
        ),
        "oversize": jwt.encode({**mallory, "pad": "x" * 20_000}, SECRET, algorithm="HS256"),
        "truncated": good_token("mallory")[:-5],
        "tampered-payload": _tamper(good_token("alice", ["agents:read"])),
    }


def _tamper(token: str) -> str:
    """Swap the payload of a valid token for one granting more: the signature no longer fits."""
    import json

    header, _, signature = token.split(".")
    payload = _b64(json.dumps(claims("mallory")).encode())
    return f"{header}.{payload}.{signature}"


@dataclass
class Seen:
    """What the app observed: every identity it was handed, the lifespan events, and the
    exceptions the app itself raised (Starlette has its own limits with hostile scopes)."""

    users: list[Any] = field(default_factory=list)
    startup: int = 0
    shutdown: int = 0
    app_errors: list[BaseException] = field(default_factory=list)


class Guard:
    """Notes every exception the *app* raises, so a test can tell them from the stack's own."""

    def __init__(self, app: ASGIApp, seen: Seen) -> None:
        self.app = app
        self.seen = seen

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            self.seen.app_errors.append(exc)
            raise


def make_app(seen: Seen) -> Starlette:
    def note(request: Request | WebSocket) -> None:
        state = request.scope.get("state") or {}
        seen.users.append(state.get("user_id") if state.get("authenticated") else None)

    async def agents(request: Request) -> Response:
        note(request)
        return JSONResponse({"user": request.scope.get("state", {}).get("user_id")})

    async def runs(request: Request) -> Response:
        note(request)

        async def events() -> AsyncIterator[bytes]:
            for i in range(3):
                yield f"data: {i}\n\n".encode()

        return StreamingResponse(events(), media_type="text/event-stream")

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def ws(websocket: WebSocket) -> None:
        note(websocket)
        await websocket.accept()
        await websocket.send_text("hello")
        await websocket.close()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        seen.startup += 1
        yield
        seen.shutdown += 1

    return Starlette(
        routes=[
            Route("/", health),
            Route("/health", health),
            Route("/agents", agents),
            Route("/agents/{agent_id}/runs", runs, methods=["POST"]),
            WebSocketRoute("/ws", ws),
        ],
        lifespan=lifespan,
    )


def stack_options(registry: CollectorRegistry, **overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "cors": {"allow_origins": [ORIGIN], "allow_credentials": True, "allow_methods": ["*"]},
        "auth": {
            "verification_keys": [SECRET, RSA_PUBLIC_PEM.decode()],
            "scope_mappings": {"GET /ws": ["ws:connect"]},
            "token_source": "both",
            "websocket_query_token": True,
        },
        "rate_limit": {"limits": ["100000/minute"]},
        "metrics": {"registry": registry},
        "access_log": True,
        "request_id": True,
        "security_headers": True,
        "trusted_proxies": ["10.0.0.0/8"],
    }
    options.update(overrides)
    return options


def wrap(inner: ASGIApp, registry: CollectorRegistry | None = None, **overrides: Any) -> ASGIApp:
    """``inner`` behind every layer of :func:`secure_stack`, outermost first."""
    app = inner
    for middleware in reversed(
        secure_stack(**stack_options(registry or CollectorRegistry(), **overrides))
    ):
        cls, args, kwargs = middleware
        app = cls(app, *args, **kwargs)
    return app


def full_stack(quiet: bool = True, **overrides: Any) -> tuple[ASGIApp, Seen, CollectorRegistry]:
    """The app behind every layer; ``quiet``: the access log goes to :data:`HOSTILE_ACCESS`."""
    if quiet:
        overrides.setdefault("access_log", {"logger": HOSTILE_ACCESS})
    seen = Seen()
    registry = CollectorRegistry()
    return wrap(Guard(make_app(seen), seen), registry, **overrides), seen, registry


# -- the checks ---------------------------------------------------------------------------------


def check_header(name: Any, value: Any) -> None:
    assert isinstance(name, bytes) and isinstance(value, bytes), (name, value)
    assert name and not any(c in name for c in b"\r\n\0 :"), name
    assert not any(c in value for c in b"\r\n\0"), (name, value)


def check_http(messages: list[Message], app_failed: bool = False) -> int:
    """Exactly one well-formed response start, first, with safe headers; returns its status.
    A 5xx is allowed only when the app itself failed (Starlette answers 500, then re-raises)."""
    starts = [m for m in messages if m["type"] == "http.response.start"]
    assert len(starts) == 1, [m["type"] for m in messages]
    assert messages[0] is starts[0], [m["type"] for m in messages]
    status = starts[0]["status"]
    assert isinstance(status, int) and 100 <= status < (600 if app_failed else 500), status
    for name, value in starts[0].get("headers") or ():
        check_header(name, value)
    return status


def check_websocket(messages: list[Message]) -> str:
    """One outcome: accepted, closed (denied) or an HTTP denial response; safe headers."""
    kinds = [m["type"] for m in messages]
    first = kinds[0]
    assert first in ("websocket.accept", "websocket.close", "websocket.http.response.start"), kinds
    for message in messages:
        if message["type"] in ("websocket.accept", "websocket.http.response.start"):
            for name, value in message.get("headers") or ():
                check_header(name, value)
        if message["type"] == "websocket.http.response.start":
            assert 400 <= message["status"] < 500, message
    assert kinds.count("websocket.accept") + kinds.count("websocket.http.response.start") <= 1
    return first


class CheckingHandler(logging.Handler):
    """Formats every record it gets (so hostile input goes through the log formatting) and keeps
    the messages that are not one printable line."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0
        self.bad: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        message = record.getMessage()
        try:
            message.encode("utf-8")
        except UnicodeEncodeError:
            self.bad.append(repr(message))
            return
        if not message.isprintable():
            self.bad.append(repr(message))


#: The access logger of the hostile stacks: outside the logging manager, so pytest's capture
#: (which attaches itself to every named logger) cannot keep thousands of records.
HOSTILE_ACCESS = logging.Logger("hostile.access", logging.INFO)
HOSTILE_ACCESS.propagate = False


@contextlib.contextmanager
def checked_logs() -> Iterator[CheckingHandler]:
    """Route the access log (and our other loggers) to a :class:`CheckingHandler`, at INFO so
    the access log really formats every request; use with ``full_stack(quiet=True)``."""
    handler = CheckingHandler()
    names = ("agentos_mw.auth", "agentos_mw.rbac", "agentos_mw.ratelimit")
    loggers = [HOSTILE_ACCESS, *(logging.getLogger(n) for n in names)]
    saved = [(lg.level, lg.propagate) for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.INFO)
        lg.propagate = False
        lg.addHandler(handler)
    try:
        yield handler
    finally:
        for lg, (level, propagate) in zip(loggers, saved, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)
            lg.propagate = propagate
