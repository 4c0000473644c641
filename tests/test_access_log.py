"""AccessLogMiddleware: one safe, structured record per request with streaming-aware timings."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket

from agentos_mw.observability import AccessLogMiddleware, RequestIDMiddleware
from agentos_mw.observability.logformat import DEFAULT_REDACT_HEADERS, DEFAULT_REDACT_QUERY
from tests.driver import call, http_scope

pytestmark = pytest.mark.anyio
LOGGER = "agentos_mw.access"


@pytest.fixture
def records(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger=LOGGER)
    return caplog


def access(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER]


async def list_agents(request: Request) -> Response:
    return JSONResponse([{"id": "a1"}])


async def get_agent(request: Request) -> Response:
    return JSONResponse({"id": request.path_params["agent_id"]})


def starlette_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/agents", list_agents),
            Route("/agents/{agent_id}", get_agent),
            Route("/health", lambda r: PlainTextResponse("ok")),
            Mount("/v1/{tenant}", routes=[Route("/agents/{agent_id}", get_agent)]),
        ]
    )


async def test_one_record_with_route_template_and_fields(records: pytest.LogCaptureFixture) -> None:
    app = RequestIDMiddleware(AccessLogMiddleware(starlette_app(), format="json"))
    await call(
        app,
        http_scope(
            "GET", "/agents/a1", headers=[("user-agent", "curl/8"), ("x-request-id", "r-1")]
        ),
    )
    (record,) = access(records)
    fields = json.loads(record.getMessage())
    assert fields == record.access  # type: ignore[attr-defined]
    assert fields["method"] == "GET" and fields["path"] == "/agents/a1"
    assert fields["route"] == "/agents/{agent_id}"
    assert fields["status"] == 200 and fields["bytes"] == len(b'{"id":"a1"}')
    assert fields["request_id"] == "r-1" and fields["client"] == "127.0.0.1"
    assert fields["headers"] == {"user-agent": "curl/8"}
    assert fields["disconnected"] is False and fields["user_id"] is None
    assert 0 <= fields["ttfb_ms"] <= fields["duration_ms"]
    assert record.levelno == logging.INFO


async def test_mounted_route_template_has_no_parameter_values(
    records: pytest.LogCaptureFixture,
) -> None:
    app = AccessLogMiddleware(starlette_app(), format="json")
    await call(app, http_scope("GET", "/v1/acme/agents/a9"))
    await call(app, http_scope("GET", "/nope"))
    first, second = (r.access for r in access(records))  # type: ignore[attr-defined]
    assert first["route"] == "/v1/{tenant}/agents/{agent_id}"
    assert second["route"] is None and second["status"] == 404


async def test_text_format_line(records: pytest.LogCaptureFixture) -> None:
    app = AccessLogMiddleware(starlette_app(), log_headers=())
    await call(app, http_scope("GET", "/agents", query_string=b"limit=5"))
    line = access(records)[0].getMessage()
    assert line.startswith('127.0.0.1 "GET /agents?limit=5 HTTP/1.1" 200 ')
    assert 'route="/agents"' in line and "duration_ms=" in line and "ttfb_ms=" in line


async def test_user_id_only_when_authenticated(records: pytest.LogCaptureFixture) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        scope["state"].update(user_id="u-7", authenticated=scope["path"] == "/yes")
        await PlainTextResponse("x")(scope, receive, send)

    mw = AccessLogMiddleware(app, format="json")
    await call(mw, http_scope(path="/yes"))
    await call(mw, http_scope(path="/no"))
    assert [r.access["user_id"] for r in access(records)] == ["u-7", None]  # type: ignore[attr-defined]


async def test_client_address_through_trusted_proxy(records: pytest.LogCaptureFixture) -> None:
    mw = AccessLogMiddleware(starlette_app(), format="json", trusted_proxies=["10.0.0.0/8"])
    headers = [("x-forwarded-for", "203.0.113.9, 10.0.0.2")]
    await call(mw, http_scope(path="/health", headers=headers, client=("10.0.0.1", 1)))
    await call(mw, http_scope(path="/health", headers=headers, client=("198.51.100.1", 1)))
    await call(mw, http_scope(path="/health", client=None))
    assert [r.access["client"] for r in access(records)] == ["203.0.113.9", "198.51.100.1", None]  # type: ignore[attr-defined]


@pytest.mark.parametrize("fmt", ["text", "json"])
async def test_every_sensitive_header_and_query_param_is_redacted(
    fmt: str, records: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"set-cookie", b"session=SECRET-resp"), (b"content-length", b"2")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    headers = [(name, f"SECRET-h{i}") for i, name in enumerate(DEFAULT_REDACT_HEADERS)]
    headers += [(name.upper(), "SECRET-upper") for name in ("Authorization",)]
    query = "&".join(f"{name}=SECRET-q{i}" for i, name in enumerate(DEFAULT_REDACT_QUERY))
    query += "&ACCESS_TOKEN=SECRET-upperq&Api%5Fkey=SECRET-encoded&page=2"
    mw = AccessLogMiddleware(app, format=fmt, log_headers="*", log_response_headers="*")  # type: ignore[arg-type]
    await call(
        mw, http_scope(headers=[*headers, ("user-agent", "ua")], query_string=query.encode())
    )
    (record,) = access(records)
    message = record.getMessage()
    assert "SECRET" not in message and "SECRET" not in repr(record.access)  # type: ignore[attr-defined]
    assert (
        message.count("[REDACTED]") >= len(DEFAULT_REDACT_HEADERS) + len(DEFAULT_REDACT_QUERY) + 2
    )
    assert "page=2" in message and "ua" in message
    for name in DEFAULT_REDACT_QUERY:
        assert f"{name}=[REDACTED]" in message


async def test_body_is_never_logged(records: pytest.LogCaptureFixture) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await PlainTextResponse("RESPONSE-BODY")(scope, receive, send)

    mw = AccessLogMiddleware(app, format="json", log_headers="*", log_response_headers="*")
    await call(mw, http_scope("POST"), body=b'{"password": "REQUEST-BODY"}')
    message = access(records)[0].getMessage()
    assert "REQUEST-BODY" not in message and "RESPONSE-BODY" not in message


@pytest.mark.parametrize("fmt", ["text", "json"])
async def test_control_characters_are_escaped(fmt: str, records: pytest.LogCaptureFixture) -> None:
    evil = '/a\r\nFAKE 200\x1b[31m\x00\u2028"x'
    mw = AccessLogMiddleware(starlette_app(), format=fmt, log_headers=["user-agent"])  # type: ignore[arg-type]
    await call(
        mw, http_scope(path=evil, headers=[(b"user-agent", b"ua\nforged"), ("x-request-id", "q")])
    )
    message = access(records)[0].getMessage()
    assert not any(ch in message for ch in "\r\n\x1b\x00\u2028")
    if fmt == "json":
        fields = json.loads(message)
        assert fields["path"] == '/a\\x0d\\x0aFAKE 200\\x1b[31m\\x00\\u2028"x'
        assert fields["headers"]["user-agent"] == "ua\\x0aforged"
    else:
        assert '\\"x' in message  # quotes cannot close the quoted request field


async def test_streaming_duration_covers_the_whole_body_and_chunks_are_not_buffered(
    records: pytest.LogCaptureFixture,
) -> None:
    events: list[tuple[str, float]] = []

    async def stream() -> Any:
        for i in range(3):
            events.append((f"produce {i}", time.perf_counter()))
            yield f"data: {i}\n\n".encode()
            await anyio.sleep(0.05)

    async def run(request: Request) -> Response:
        return StreamingResponse(stream(), media_type="text/event-stream")

    app = AccessLogMiddleware(
        Starlette(routes=[Route("/runs", run)]),
        format="json",
        server_timing=True,
        process_time_header=True,
    )
    done = anyio.Event()
    sent_request = False

    async def receive() -> Any:
        nonlocal sent_request
        if not sent_request:
            sent_request = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    messages: list[Any] = []

    async def send(message: Any) -> None:
        messages.append(message)
        if message["type"] == "http.response.body" and message.get("body"):
            events.append(("arrive", time.perf_counter()))

    started = time.perf_counter()
    await app(http_scope(path="/runs"), receive, send)
    done.set()
    # Each chunk reached the client before the next one was produced: nothing buffered.
    kinds = [name.split()[0] for name, _ in events]
    assert kinds == ["produce", "arrive"] * 3
    fields = access(records)[0].access  # type: ignore[attr-defined]
    arrivals = [t for name, t in events if name == "arrive"]
    assert fields["duration_ms"] >= (arrivals[-1] - started) * 1000 - 0.5
    assert fields["ttfb_ms"] <= (arrivals[0] - started) * 1000 + 0.5
    assert fields["bytes"] == 3 * len(b"data: 0\n\n") and not fields["disconnected"]
    start_headers = dict(messages[0]["headers"])
    assert b"server-timing" not in start_headers and b"x-process-time" not in start_headers


async def test_server_timing_on_rendered_responses(records: pytest.LogCaptureFixture) -> None:
    mw = AccessLogMiddleware(starlette_app(), server_timing=True, process_time_header=True)
    result = await call(mw, http_scope(path="/agents"))
    assert (result.header("server-timing") or "").startswith("app;dur=")
    assert float(result.header("x-process-time") or "x") >= 0
    assert result.header("content-length") == str(len(result.body))


async def test_client_disconnect_mid_stream_is_recorded(records: pytest.LogCaptureFixture) -> None:
    async def stream() -> Any:
        yield b"data: 0\n\n"
        await anyio.sleep(10)
        yield b"data: never\n\n"

    async def run(request: Request) -> Response:
        return StreamingResponse(stream(), media_type="text/event-stream")

    mw = AccessLogMiddleware(Starlette(routes=[Route("/runs", run)]))
    calls = 0

    async def receive() -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            return {"type": "http.request", "body": b""}
        await anyio.sleep(0.02)
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        pass

    with anyio.fail_after(5):
        await mw(http_scope(path="/runs"), receive, send)
    (record,) = access(records)
    assert "disconnected=true" in record.getMessage() and record.levelno == logging.INFO


async def test_send_oserror_is_a_disconnect_not_an_app_error(
    records: pytest.LogCaptureFixture,
) -> None:
    async def stream() -> Any:
        yield b"one"
        yield b"two"

    async def run(request: Request) -> Response:
        return StreamingResponse(stream())

    class Gone(OSError):
        pass

    async def send(message: Any) -> None:
        if message["type"] == "http.response.body" and message.get("body") == b"two":
            raise Gone()

    async def receive() -> Any:
        await anyio.sleep(10)

    mw = AccessLogMiddleware(Starlette(routes=[Route("/s", run)]), format="json")
    scope = http_scope(path="/s")
    scope["asgi"]["spec_version"] = "2.4"  # Starlette turns the OSError into ClientDisconnect
    with pytest.raises(Exception):  # noqa: B017 - whatever Starlette raises, it is not masked
        await mw(scope, receive, send)
    (record,) = access(records)
    assert record.access["disconnected"] is True and record.exc_info is None  # type: ignore[attr-defined]


async def test_disconnect_before_response_logs_499(records: pytest.LogCaptureFixture) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        assert message["type"] == "http.disconnect"

    async def receive() -> Any:
        return {"type": "http.disconnect"}

    await AccessLogMiddleware(app, format="json")(http_scope(), receive, lambda m: None)  # type: ignore[arg-type,return-value]
    fields = access(records)[0].access  # type: ignore[attr-defined]
    assert fields["status"] == 499 and fields["disconnected"] is True


async def test_exception_logged_once_with_request_id_and_reraised(
    records: pytest.LogCaptureFixture,
) -> None:
    async def boom(request: Request) -> Response:
        raise RuntimeError("kaboom")

    inner = AccessLogMiddleware(Starlette(routes=[Route("/", boom)]), logger="agentos_mw.access")
    app = RequestIDMiddleware(AccessLogMiddleware(inner, format="json"))
    with pytest.raises(RuntimeError, match="kaboom"):
        await call(app, http_scope(headers=[("x-request-id", "err-1")]))
    logged = access(records)
    assert len(logged) == 2  # one record per middleware instance...
    with_traceback = [r for r in logged if r.exc_info]
    assert len(with_traceback) == 1  # ...but the exception itself is logged once
    assert with_traceback[0].levelno == logging.ERROR
    assert all(r.access["request_id"] == "err-1" and r.access["status"] == 500 for r in logged)  # type: ignore[attr-defined]
    assert all(r.access["exception"] == "RuntimeError" for r in logged)  # type: ignore[attr-defined]


async def test_excluded_paths_are_not_logged(records: pytest.LogCaptureFixture) -> None:
    mw = AccessLogMiddleware(starlette_app(), exclude_paths=["/health"], server_timing=True)
    result = await call(mw, http_scope(path="/health"))
    assert result.status == 200 and result.header("server-timing") is None
    await call(mw, http_scope(path="/agents"))
    assert [r.access["path"] for r in access(records)] == ["/agents"]  # type: ignore[attr-defined]


async def test_websocket_session_record(records: pytest.LogCaptureFixture) -> None:
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_bytes(b"12345")
        await websocket.close()

    mw = AccessLogMiddleware(Starlette(routes=[WebSocketRoute("/ws/{room}", ws)]), format="json")
    await call(mw, http_scope(path="/ws/r1", type="websocket"))
    fields = access(records)[0].access  # type: ignore[attr-defined]
    assert fields["type"] == "websocket" and fields["status"] == 101
    assert fields["route"] == "/ws/{room}" and fields["bytes"] == 5 and not fields["disconnected"]


async def test_disabled_logger_costs_no_record(records: pytest.LogCaptureFixture) -> None:
    mw = AccessLogMiddleware(starlette_app(), level=logging.DEBUG)
    await call(mw, http_scope(path="/agents"))
    assert access(records) == []


def test_bad_configuration_is_rejected() -> None:
    with pytest.raises(ValueError):
        AccessLogMiddleware(starlette_app(), format="xml")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        AccessLogMiddleware(starlette_app(), redact_headers="authorization")
    with pytest.raises(ValueError):
        AccessLogMiddleware(starlette_app(), trusted_proxies=["nope"])


async def test_lifespan_passes_through() -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((receive, send))

    async def receive() -> Any:
        return {}

    async def send(message: Any) -> None:
        return None

    await AccessLogMiddleware(app)({"type": "lifespan"}, receive, send)
    assert seen == [(receive, send)]


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    path=st.text(max_size=80),
    query=st.binary(max_size=80),
    header=st.binary(max_size=80),
    fmt=st.sampled_from(["text", "json"]),
)
def test_any_client_input_gives_one_clean_line(
    path: str, query: bytes, header: bytes, fmt: str, records: pytest.LogCaptureFixture
) -> None:
    records.clear()
    mw = AccessLogMiddleware(starlette_app(), format=fmt, log_headers="*")  # type: ignore[arg-type]
    scope = http_scope(path="/" + path, query_string=query, headers=[(b"user-agent", header)])
    anyio.run(call, mw, scope)
    (record,) = access(records)
    message = record.getMessage()
    assert message.isprintable()
    message.encode("utf-8")  # no lone surrogates
    if fmt == "json":
        assert json.loads(message)["status"] in (200, 404)
