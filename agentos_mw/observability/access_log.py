"""One access-log record per request or websocket session, written when it is over.

Timings are taken at the ASGI messages themselves, so a streamed body (SSE agent runs) is
measured to its last chunk, not to the first byte as ``call_next``-based recipes do:

* ``ttfb_ms``: from entering this middleware to the app handing over the first body byte (or the
  end of an empty body);
* ``duration_ms``: to the moment the server accepted the final body chunk (background tasks that
  run afterwards are not counted). Without a final chunk (exception, disconnect): to the app's end.

``disconnected=true`` when the client went away before the response completed: ``receive`` gave
``http.disconnect`` early, or ``send`` raised ``OSError`` (uvicorn's ``ClientDisconnected``).
Exceptions from the app are logged once, on this record (``exc_info``), and re-raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import Any, Literal

from .._asgi import ASGIApp, Message, Receive, Scope, Send
from ..clientip import ClientIPResolver
from ..paths import PathSet, route_path
from .logformat import (
    DEFAULT_REDACT_HEADERS,
    DEFAULT_REDACT_QUERY,
    escape,
    format_json,
    format_text,
    names,
    pick_headers,
    redact_query,
)
from .records import make_record
from .route import RouteLabeler, route_template

ACCESS_LOGGER = "agentos_mw.access"
_LOGGED_FLAG = "__agentos_mw_logged__"
_HTTP_VERSIONS = {v: v for v in ("1.0", "1.1", "2", "2.0", "3")}
#: Methods logged as they are; anything else a client sent is escaped.
_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT")
)
_perf = time.perf_counter


def _wanted(values: Iterable[str] | str, what: str) -> frozenset[bytes] | None:
    """Header names to log, as the lowercase bytes servers deliver; None means all."""
    if values == "*":
        return None
    return frozenset(name.encode("latin-1") for name in names(values, what))


def _is_disconnect(exc: BaseException) -> bool:
    """uvicorn's ``ClientDisconnected`` is an ``OSError``; Starlette turns that into its own
    ``ClientDisconnect`` (request body reads and streaming responses)."""
    return isinstance(exc, OSError) or type(exc).__name__ == "ClientDisconnect"


class AccessLogMiddleware:
    """Structured access log on logger ``agentos_mw.access`` (text or JSON message; the fields
    are also attached to the record as ``record.access`` for structured handlers).

    ``log_headers`` / ``log_response_headers``: header names to include (``"*"`` = all); names in
    ``redact_headers`` are always replaced by ``[REDACTED]``, as are the values of query
    parameters in ``redact_query_params``. Bodies are never logged. ``exclude_paths``: patterns
    (see :mod:`agentos_mw.paths`) not logged at all. ``server_timing`` / ``process_time_header``
    add ``Server-Timing: app;dur=<ms>`` / ``X-Process-Time: <s>`` to responses whose body is
    already rendered (they carry ``content-length``): the value is the time from entering this
    middleware until the response headers were sent, i.e. the handler's time. Streaming
    responses do not get them: their duration is unknown when headers go out.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        logger: logging.Logger | str = ACCESS_LOGGER,
        level: int = logging.INFO,
        error_level: int = logging.ERROR,
        format: Literal["text", "json"] = "text",
        log_headers: Iterable[str] | Literal["*"] = ("user-agent",),
        log_response_headers: Iterable[str] | Literal["*"] = (),
        redact_headers: Iterable[str] = DEFAULT_REDACT_HEADERS,
        redact_query_params: Iterable[str] = DEFAULT_REDACT_QUERY,
        log_query: bool = True,
        exclude_paths: Iterable[str] = (),
        trusted_proxies: Iterable[str] = (),
        routes: Iterable[str] = (),
        server_timing: bool = False,
        process_time_header: bool = False,
        max_field_length: int = 2048,
    ) -> None:
        if format not in ("text", "json"):
            raise ValueError("format must be 'text' or 'json'")
        if isinstance(logger, str):
            logger = logging.getLogger(logger)
        if not isinstance(logger, logging.Logger):
            raise TypeError("logger must be a logging.Logger or a logger name")
        if not isinstance(level, int) or not isinstance(error_level, int):
            raise TypeError("level and error_level must be logging levels (int)")
        if not isinstance(max_field_length, int) or max_field_length < 16:
            raise ValueError("max_field_length must be an int >= 16")
        self.app = app
        self.logger = logger
        self.level = level
        self.error_level = error_level
        self._format = format_json if format == "json" else format_text
        self._headers = _wanted(log_headers, "log_headers")
        self._response_headers = _wanted(log_response_headers, "log_response_headers")
        self._redact_headers = names(redact_headers, "redact_headers")
        self._redact_query = names(redact_query_params, "redact_query_params")
        self.log_query = bool(log_query)
        exclude = PathSet(exclude_paths)
        self._exclude: PathSet | None = exclude if len(exclude) else None
        self._client_ip = ClientIPResolver(trusted_proxies)
        self._route = RouteLabeler(routes)
        self._route_patterns = self._route.has_patterns
        self._timing = bool(server_timing) or bool(process_time_header)
        self.server_timing = bool(server_timing)
        self.process_time_header = bool(process_time_header)
        self.max_field_length = max_field_length

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        if self._exclude is not None and route_path(scope) in self._exclude:
            await self.app(scope, receive, send)
            return
        start = _perf()
        if scope.get("state") is None:  # created here so inner middlewares share one state dict
            scope["state"] = {}
        root_path: str = scope.get("root_path") or ""
        status = 0
        sent = 0
        first = 0.0
        end = 0.0
        complete = False
        disconnected = False
        response_headers: Any = None
        timing = self._timing and kind == "http"
        is_http = kind == "http"

        async def receive_wrapper() -> Message:
            nonlocal disconnected
            message = await receive()
            if not complete:
                mtype = message["type"]
                if mtype == "http.disconnect" or mtype == "websocket.disconnect":
                    disconnected = True
            return message

        async def send_wrapper(message: Message) -> None:
            nonlocal status, sent, first, end, complete, disconnected, response_headers
            mtype = message["type"]
            if mtype == "http.response.body":
                body = message.get("body", b"")
                more = message.get("more_body", False)
                sent += len(body)
                if not first and (body or not more):
                    first = _perf()
            elif mtype == "http.response.start":
                status = message["status"]
                response_headers = message.get("headers")
                if timing:
                    self._add_timing(message, start)
            try:
                await send(message)
            except OSError:
                disconnected = True
                raise
            if mtype == "http.response.body":
                if not message.get("more_body", False):
                    end = _perf()
                    complete = True
            elif mtype == "http.response.pathsend":
                end = first = _perf()
                complete = True
            elif not is_http:
                if mtype == "websocket.accept":
                    status = 101
                    first = _perf()
                elif mtype == "websocket.close":
                    status = status or 403
                    complete = True
                elif mtype == "websocket.http.response.start":
                    status = message["status"]
                    response_headers = message.get("headers")
                elif mtype == "websocket.send":
                    data = message.get("bytes") or message.get("text") or b""
                    sent += len(data.encode() if isinstance(data, str) else data)

        error: Exception | None = None
        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        except BaseException as exc:
            if disconnected and _is_disconnect(exc):
                pass  # the client left: recorded as disconnected=true, not as an app error
            elif isinstance(exc, Exception):
                error = exc
            elif isinstance(exc, asyncio.CancelledError) and not complete:
                disconnected = True  # servers cancel the request task when the client is gone
            raise
        finally:
            if self.logger.isEnabledFor(self.level if error is None else self.error_level):
                now = end if end and first else _perf()  # read only when one is missing
                try:  # noqa: SIM105 - cheaper than contextlib.suppress on every request
                    self._log(
                        scope,
                        root_path,
                        status,
                        sent,
                        start,
                        first or now,
                        end or now,
                        disconnected and not complete,
                        response_headers,
                        error,
                    )
                except Exception:  # logging must never mask the response or the app's error
                    pass

    def _add_timing(self, message: Message, start: float) -> None:
        headers = message.get("headers") or []
        for key, _ in headers:
            if key == b"content-length":
                break
        else:
            return  # streaming: the duration is not known while headers are sent
        elapsed = _perf() - start
        extra = []
        if self.server_timing:
            extra.append((b"server-timing", b"app;dur=%.3f" % (elapsed * 1000)))
        if self.process_time_header:
            extra.append((b"x-process-time", b"%.6f" % elapsed))
        message["headers"] = [*headers, *extra]

    def _log(
        self,
        scope: Scope,
        root_path: str,
        status: int,
        sent: int,
        start: float,
        first: float,
        end: float,
        disconnected: bool,
        response_headers: Any,
        error: Exception | None,
    ) -> None:
        # Each text field is used as is when it is a short printable str (the common case, one
        # cheap check) and escaped otherwise.
        limit = self.max_field_length
        state = scope.get("state") or {}
        user_id = state.get("user_id") if state.get("authenticated") else None
        if user_id is not None and not (
            type(user_id) is str and len(user_id) <= 256 and user_id.isprintable()
        ):
            user_id = escape(str(user_id), 256)
        request_id = state.get("request_id")
        if request_id is not None and not (
            type(request_id) is str and len(request_id) <= 256 and request_id.isprintable()
        ):
            request_id = escape(str(request_id), 256)
        client = self._client_ip(scope)
        if client and not (len(client) <= 64 and client.isprintable()):
            client = escape(client, 64)
        kind = scope["type"]
        method = None
        if kind == "http":
            method = scope.get("method") or "GET"
            if not (type(method) is str and method in _METHODS):
                method = escape(str(method), 32)
        path = scope.get("path") or "/"
        if not (type(path) is str and len(path) <= limit and path.isprintable()):
            path = escape(str(path), limit)
        version = scope.get("http_version") or "1.1"
        http_version = (
            _HTTP_VERSIONS.get(version)
            if type(version) is str
            else _HTTP_VERSIONS.get(str(version))
        )
        exc_info: Any = None
        if error is not None and not getattr(error, _LOGGED_FLAG, False):
            exc_info = (type(error), error, error.__traceback__)
            with contextlib.suppress(AttributeError, TypeError):
                setattr(error, _LOGGED_FLAG, True)
        if not status:  # no response sent: what the server answers, or the client's absence
            status = 499 if disconnected else 500
        query = scope.get("query_string") or b""
        fields: dict[str, Any] = {
            "type": kind,
            "method": method,
            "path": path,
            "query": redact_query(query, self._redact_query, limit)
            if query and self.log_query
            else "",
            "route": self._route.lookup(scope, root_path)
            if self._route_patterns
            else route_template(scope, root_path),
            "status": status,
            "bytes": sent,
            # µs resolution, cheaper than round()
            "ttfb_ms": int((first - start) * 1_000_000) / 1000,
            "duration_ms": int((end - start) * 1_000_000) / 1000,
            "client": client or None,
            "user_id": user_id,
            "request_id": request_id,
            "http_version": http_version or "?",
            "disconnected": disconnected,
        }
        if self._headers is None or self._headers:
            fields["headers"] = pick_headers(
                scope.get("headers") or (), self._headers, self._redact_headers
            )
        if response_headers and (self._response_headers is None or self._response_headers):
            fields["response_headers"] = pick_headers(
                response_headers, self._response_headers, self._redact_headers
            )
        if error is not None:
            fields["exception"] = type(error).__name__
        level = self.level if error is None else self.error_level
        self.logger.handle(
            make_record(self.logger, level, self._format(fields), exc_info, {"access": fields})
        )
