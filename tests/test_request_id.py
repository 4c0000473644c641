"""RequestIDMiddleware: validation, generation, propagation to state, headers, contextvar, logs."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from agentos_mw.observability import RequestIDLogFilter, RequestIDMiddleware, get_request_id
from tests.driver import call, http_scope

pytestmark = pytest.mark.anyio
VALID = re.compile(r"[A-Za-z0-9._-]{1,128}")
UUID4_HEX = re.compile(r"[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}")


async def echo(scope: Any, receive: Any, send: Any) -> None:
    body = f"{scope['state']['request_id']}|{get_request_id()}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def test_generates_uuid4_hex_when_header_missing() -> None:
    result = await call(RequestIDMiddleware(echo), http_scope())
    rid = result.header("x-request-id")
    assert rid is not None and UUID4_HEX.fullmatch(rid)
    assert result.body.decode() == f"{rid}|{rid}"


async def test_ids_differ_per_request() -> None:
    app = RequestIDMiddleware(echo)
    ids = {(await call(app, http_scope())).header("x-request-id") for _ in range(20)}
    assert len(ids) == 20


def test_generated_ids_are_unique_uuid4_across_threads_and_batches() -> None:
    """Ids are taken from batches of 256: many threads draining them at once over many refills
    must still never get the same id, and every id must be a version-4 UUID."""
    import threading

    from agentos_mw.observability.request_id import uuid4_hex

    per_thread, results = 5_000, []

    def draw() -> None:
        results.append([uuid4_hex() for _ in range(per_thread)])

    threads = [threading.Thread(target=draw) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = [rid for batch in results for rid in batch]
    assert len(ids) == 4 * per_thread == len(set(ids))
    assert all(UUID4_HEX.fullmatch(rid) for rid in ids)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_forked_worker_never_repeats_its_parents_ids() -> None:
    import os

    from agentos_mw.observability.request_id import uuid4_hex

    uuid4_hex()  # the parent now holds a partly used batch
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report the ids it would hand out, then leave at once
        os.close(read)
        os.write(write, " ".join(uuid4_hex() for _ in range(50)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = set(pipe.read().split())
    os.waitpid(pid, 0)
    parent = {uuid4_hex() for _ in range(50)}
    assert len(child) == 50 and child.isdisjoint(parent)


@pytest.mark.parametrize(
    "incoming",
    [
        "3f2b8c1e-7a4d-4e6b-9c0a-1b2c3d4e5f60",
        "0123456789abcdef0123456789abcdef",
        "a",
        "x" * 128,
        "req.1_2-3",
    ],
)
async def test_valid_incoming_id_is_kept(incoming: str) -> None:
    result = await call(RequestIDMiddleware(echo), http_scope(headers=[("x-request-id", incoming)]))
    assert result.header("x-request-id") == incoming
    assert result.body.decode() == f"{incoming}|{incoming}"


@pytest.mark.parametrize(
    "incoming",
    [
        b"",
        b"x" * 129,
        b"a b",
        b"a\r\nset-cookie: x=1",
        b"<script>",
        b"caf\xe9",
        b"a\x00b",
        b"id;drop",
    ],
)
async def test_invalid_incoming_id_is_replaced(incoming: bytes) -> None:
    result = await call(
        RequestIDMiddleware(echo), http_scope(headers=[(b"x-request-id", incoming)])
    )
    rid = result.header("x-request-id")
    assert rid is not None and UUID4_HEX.fullmatch(rid)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_incoming_header_bytes_yield_a_safe_id(raw: bytes) -> None:
    import anyio

    result = anyio.run(
        call, RequestIDMiddleware(echo), http_scope(headers=[(b"x-request-id", raw)])
    )
    values = result.header_all("x-request-id")
    assert len(values) == 1
    assert VALID.fullmatch(values[0])
    assert (values[0] == raw.decode("latin-1")) == bool(VALID.fullmatch(raw.decode("latin-1")))


async def test_trust_incoming_false_always_generates() -> None:
    app = RequestIDMiddleware(echo, trust_incoming=False)
    result = await call(app, http_scope(headers=[("x-request-id", "abc")]))
    assert result.header("x-request-id") != "abc"


async def test_custom_header_validator_and_generator() -> None:
    app = RequestIDMiddleware(
        echo,
        header_name="X-Correlation-ID",
        validator=lambda v: v.startswith("ok-"),
        generator=lambda: "gen-1",
    )
    assert (await call(app, http_scope(headers=[("x-correlation-id", "ok-7")]))).header(
        "x-correlation-id"
    ) == "ok-7"
    assert (await call(app, http_scope(headers=[("x-correlation-id", "bad")]))).header(
        "x-correlation-id"
    ) == "gen-1"


async def test_permissive_validator_cannot_let_crlf_through() -> None:
    app = RequestIDMiddleware(echo, validator=lambda v: True)
    result = await call(app, http_scope(headers=[(b"x-request-id", b"a\rb")]))
    assert "\r" not in (result.header("x-request-id") or "\r")


async def test_failing_validator_means_generated_id_not_500() -> None:
    def boom(value: str) -> bool:
        raise RuntimeError("bug")

    result = await call(
        RequestIDMiddleware(echo, validator=boom), http_scope(headers=[("x-request-id", "a")])
    )
    assert result.status == 200 and UUID4_HEX.fullmatch(result.header("x-request-id") or "")


def test_bad_configuration_is_rejected() -> None:
    with pytest.raises(ValueError):
        RequestIDMiddleware(echo, header_name="x request id")
    with pytest.raises(ValueError):
        RequestIDMiddleware(echo, generator=lambda: "a\r\nb")
    with pytest.raises(TypeError):
        RequestIDMiddleware(echo, validator="yes")  # type: ignore[arg-type]


async def test_app_header_kept_and_never_duplicated() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"x-request-id", b"mine")]}
        )
        await send({"type": "http.response.body", "body": b""})

    result = await call(RequestIDMiddleware(app), http_scope())
    assert result.header_all("x-request-id") == ["mine"]


async def test_response_header_can_be_disabled() -> None:
    result = await call(RequestIDMiddleware(echo, response_header=False), http_scope())
    assert result.header("x-request-id") is None
    assert len(result.body.decode().split("|")[0]) == 32


async def test_contextvar_and_log_filter_in_endpoint_and_background_task(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: dict[str, Any] = {}
    log = logging.getLogger("tests.request_id.app")

    def background() -> None:
        seen["background"] = get_request_id()
        log.warning("from background")

    async def endpoint(request: Request) -> Response:
        seen["endpoint"] = get_request_id()
        seen["state"] = request.state.request_id
        log.warning("from endpoint")
        return PlainTextResponse("ok", background=BackgroundTask(background))

    app = RequestIDMiddleware(Starlette(routes=[Route("/", endpoint)]))
    log_filter = RequestIDLogFilter()
    caplog.handler.addFilter(log_filter)
    try:
        with caplog.at_level(logging.WARNING, logger="tests.request_id.app"):
            result = await call(app, http_scope(headers=[("x-request-id", "req-42")]))
    finally:
        caplog.handler.removeFilter(log_filter)
    assert result.header("x-request-id") == "req-42"
    assert seen == {"endpoint": "req-42", "state": "req-42", "background": "req-42"}
    assert [r.request_id for r in caplog.records] == ["req-42", "req-42"]  # type: ignore[attr-defined]
    assert get_request_id() is None  # reset after the request


def test_log_filter_default_outside_requests() -> None:
    record = logging.LogRecord("x", logging.INFO, "f", 1, "m", (), None)
    assert RequestIDLogFilter(default="none").filter(record)
    assert record.request_id == "none"  # type: ignore[attr-defined]


async def test_websocket_gets_id_on_accept() -> None:
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json({"rid": websocket.state.request_id, "ctx": get_request_id()})
        await websocket.close()

    messages: list[Any] = []
    app = RequestIDMiddleware(Starlette(routes=[WebSocketRoute("/ws", ws)]))
    scope = http_scope(path="/ws", type="websocket", headers=[("x-request-id", "ws-1")])
    sent = iter([{"type": "websocket.connect"}])

    async def receive() -> Any:
        return next(sent, {"type": "websocket.disconnect", "code": 1000})

    async def send(message: Any) -> None:
        messages.append(message)

    await app(scope, receive, send)
    assert (b"x-request-id", b"ws-1") in messages[0]["headers"]
    assert '"rid":"ws-1"' in messages[1]["text"].replace(" ", "")
    assert '"ctx":"ws-1"' in messages[1]["text"].replace(" ", "")


async def test_lifespan_passes_through_untouched() -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope)

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
    await RequestIDMiddleware(app)(scope, None, None)  # type: ignore[arg-type]
    assert seen == [{"type": "lifespan", "asgi": {"version": "3.0"}}]


async def test_starlette_add_middleware_and_jsonresponse() -> None:
    async def endpoint(request: Request) -> Response:
        return JSONResponse({"rid": request.state.request_id})

    app = Starlette(routes=[Route("/", endpoint)])
    app.add_middleware(RequestIDMiddleware, header_name="x-req")
    result = await call(app, http_scope(headers=[("x-req", "abc")]))
    assert result.json() == {"rid": "abc"} and result.header("x-req") == "abc"
