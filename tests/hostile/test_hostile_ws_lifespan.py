"""Websocket handshakes and lifespan through the complete stack.

Websockets: whatever the handshake carries, the stack accepts it for a valid token only, denies
it once (HTTP denial response when the server offers ``websocket.http.response``, else close 1008)
and never raises. Lifespan: the stack must not touch it - a middleware that does makes uvicorn
skip the app's startup handlers silently.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette

from agentos_mw import apply_stack, secure_stack
from agentos_mw._asgi import Message
from tests.driver import call, http_scope
from tests.hostile.stack import (
    GOOD_SUBJECTS,
    CheckingHandler,
    Seen,
    bad_tokens,
    check_websocket,
    good_token,
    make_app,
    stack_options,
    wrap,
)
from tests.hostile.test_hostile_http import client, header, path_text

BAD = bad_tokens()
TOKENS = [good_token("alice"), good_token("bob", ["agents:read"]), *BAD.values()]


def ws_scope(
    path: str = "/ws",
    headers: list[tuple[bytes, bytes]] | None = None,
    query: bytes = b"",
    http_response: bool = False,
) -> dict[str, Any]:
    scope = http_scope("GET", "/", headers or [], query_string=query, type="websocket")
    scope["path"] = path
    scope["subprotocols"] = []
    if http_response:
        scope["extensions"] = {"websocket.http.response": {}}
    return scope


def run_ws(
    runner: asyncio.Runner, stack: tuple[Any, Seen, CheckingHandler], scope: dict[str, Any]
) -> str:
    app, seen, handler = stack
    before, errors = len(seen.users), len(seen.app_errors)
    try:
        result = runner.run(call(app, scope))
    except Exception as exc:
        assert seen.app_errors[errors:] and exc is seen.app_errors[-1], exc
        return "app-error"
    outcome = check_websocket(result.messages)
    assert all(user in GOOD_SUBJECTS for user in seen.users[before:]), seen.users[before:]
    assert not handler.bad, handler.bad[:3]
    return outcome


token_place = st.sampled_from(["header", "query", "cookie", "subprotocol", "none"])


@settings(
    max_examples=800,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    path=st.one_of(st.just("/ws"), path_text),
    headers=st.lists(header, max_size=8),
    token=st.sampled_from(TOKENS),
    place=token_place,
    query=st.binary(max_size=40),
    http_response=st.booleans(),
    peer=client,
)
def test_any_websocket_handshake_is_answered_once(
    runner: asyncio.Runner,
    stack: tuple[Any, Seen, CheckingHandler],
    path: str,
    headers: list[tuple[bytes, bytes]],
    token: str,
    place: str,
    query: bytes,
    http_response: bool,
    peer: Any,
) -> None:
    raw = token.encode()
    headers = list(headers)
    if place == "header":
        headers.append((b"authorization", b"Bearer " + raw))
    elif place == "cookie":
        headers.append((b"cookie", b"access_token=" + raw))
    elif place == "query":
        query = b"access_token=" + raw + b"&" + query
    scope = ws_scope(path, headers, query, http_response)
    scope["client"] = peer
    if place == "subprotocol":
        scope["subprotocols"] = ["bearer", token]
    run_ws(runner, stack, scope)


@pytest.mark.parametrize("http_response", [True, False])
@pytest.mark.parametrize("name", sorted(BAD))
def test_forged_tokens_are_denied_at_the_handshake(
    runner: asyncio.Runner,
    stack: tuple[Any, Seen, CheckingHandler],
    name: str,
    http_response: bool,
) -> None:
    scope = ws_scope(query=b"access_token=" + BAD[name].encode(), http_response=http_response)
    outcome = run_ws(runner, stack, scope)
    if http_response:
        assert outcome == "websocket.http.response.start"
    else:
        assert outcome == "websocket.close"


def test_valid_token_opens_the_websocket(
    runner: asyncio.Runner, stack: tuple[Any, Seen, CheckingHandler]
) -> None:
    scope = ws_scope(headers=[(b"authorization", f"Bearer {good_token('alice')}".encode())])
    assert run_ws(runner, stack, scope) == "websocket.accept"
    # a token without the ws:connect scope is refused by RBAC (403), not accepted
    weak = ws_scope(
        headers=[(b"authorization", f"Bearer {good_token('bob', ['agents:read'])}".encode())],
        http_response=True,
    )
    assert run_ws(runner, stack, weak) == "websocket.http.response.start"
    result = runner.run(call(stack[0], weak))
    assert result.status == 403


async def lifespan(app: Any, *, fail: bool = False) -> list[Message]:
    """Drive the lifespan protocol the way uvicorn does: startup, then shutdown."""
    sent: list[Message] = []
    events = asyncio.Queue[Message]()
    await events.put({"type": "lifespan.startup"})

    async def receive() -> Message:
        return await events.get()

    async def send(message: Message) -> None:
        sent.append(message)
        if message["type"] == "lifespan.startup.complete":
            await events.put({"type": "lifespan.shutdown"})

    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
    await asyncio.wait_for(app(scope, receive, send), 5)
    return sent


def lifespan_apps(seen: Seen) -> dict[str, Any]:
    registry = CollectorRegistry
    starlette = make_app(seen)
    for middleware in reversed(secure_stack(**stack_options(registry()))):
        starlette.add_middleware(middleware.cls, *middleware.args, **middleware.kwargs)
    return {
        "wrapped": wrap(make_app(seen), registry()),
        "starlette-middleware": Starlette(
            routes=make_app(seen).routes,
            middleware=secure_stack(**stack_options(registry())),
            lifespan=make_app(seen).router.lifespan_context,
        ),
        "add_middleware": starlette,
        "apply_stack": apply_stack(make_app(seen), **stack_options(registry())),
    }


@pytest.mark.parametrize(
    "kind", ["wrapped", "starlette-middleware", "add_middleware", "apply_stack"]
)
def test_lifespan_startup_and_shutdown_handlers_run_through_the_stack(
    runner: asyncio.Runner, kind: str
) -> None:
    seen = Seen()
    app = lifespan_apps(seen)[kind]
    sent = runner.run(lifespan(app))
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert (seen.startup, seen.shutdown) == (1, 1)


def test_lifespan_failure_is_reported_not_swallowed(runner: asyncio.Runner) -> None:
    @contextlib.asynccontextmanager
    async def broken(app: Starlette) -> AsyncIterator[None]:
        raise RuntimeError("database unreachable")
        yield  # pragma: no cover

    app = wrap(Starlette(lifespan=broken), CollectorRegistry())
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        sent.append(message)

    with pytest.raises(RuntimeError, match="database unreachable"):
        runner.run(app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send))
    assert [m["type"] for m in sent] == ["lifespan.startup.failed"]


def test_lifespan_scope_and_callables_reach_the_app_untouched(runner: asyncio.Runner) -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope, receive, send))

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        return None

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
    runner.run(wrap(app, CollectorRegistry())(scope, receive, send))
    (got,) = seen
    assert got[0] is scope and got[0] == {"type": "lifespan", "asgi": {"version": "3.0"}}
    assert got[1] is receive and got[2] is send
