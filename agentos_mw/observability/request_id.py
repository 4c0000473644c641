"""Request IDs: accept a well-formed incoming id or make one, and make it visible everywhere.

The id lands in ``scope["state"]["request_id"]`` (``request.state.request_id``), on the response
header, and in a context variable that :class:`RequestIDLogFilter` copies onto every log record.
The context variable is set before the app runs and reset only after it returns, so the endpoint
and Starlette background tasks (which run after the response, in the same task) both see it.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from contextvars import ContextVar

from .._asgi import ASGIApp, Message, Receive, Scope, Send, first_header, latin1_header

_request_id: ContextVar[str | None] = ContextVar("agentos_mw_request_id", default=None)

#: 1-128 characters of ``[A-Za-z0-9._-]``: UUIDs (with or without dashes) and nginx's
#: ``$request_id`` pass; anything that could smuggle text into logs or headers does not.
_DEFAULT_ID = re.compile(rb"[A-Za-z0-9._-]{1,128}")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")


def get_request_id() -> str | None:
    """The current request's id, or None outside a request."""
    return _request_id.get()


_BATCH = 256
_ids: list[str] = []


def _reset_ids() -> None:
    """A forked worker must never hand out ids its parent generated."""
    global _ids
    _ids = []


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_ids)


def _version_masks() -> tuple[int, int]:
    """AND/OR masks that set the version (4) and variant bits of every id in a batch at once."""
    clear = bytearray(b"\xff" * 16 * _BATCH)
    stamp = bytearray(16 * _BATCH)
    for offset in range(0, 16 * _BATCH, 16):
        clear[offset + 6], stamp[offset + 6] = 0x0F, 0x40
        clear[offset + 8], stamp[offset + 8] = 0x3F, 0x80
    return int.from_bytes(clear, "big"), int.from_bytes(stamp, "big")


_CLEAR, _STAMP = _version_masks()


def _new_batch() -> list[str]:
    """256 random (version 4, RFC 4122 variant) UUIDs as hex, from one ``os.urandom`` call."""
    bits = int.from_bytes(os.urandom(16 * _BATCH), "big") & _CLEAR | _STAMP
    text = bits.to_bytes(16 * _BATCH, "big").hex()
    return [text[i : i + 32] for i in range(0, 32 * _BATCH, 32)]


def uuid4_hex() -> str:
    """A random (version 4) UUID as 32 hex digits; cheaper than ``uuid.uuid4().hex``.

    The bytes come from ``os.urandom`` like ``uuid4``'s, 256 ids per system call. Each id is
    taken with one ``list.pop()``, which is atomic, so no two requests (or threads) ever get
    the same id; a refill race only makes a batch go unused."""
    global _ids
    try:
        return _ids.pop()
    except IndexError:
        batch = _new_batch()
        _ids = batch
        return batch.pop()


def default_validator(value: str) -> bool:
    """The default rule: 1-128 characters of ``[A-Za-z0-9._-]``."""
    return _DEFAULT_ID.fullmatch(value.encode("latin-1", "replace")) is not None


class RequestIDMiddleware:
    """Give every HTTP request and websocket session an id.

    ``header_name``: request/response header (default ``x-request-id``). ``trust_incoming``:
    accept a client-sent id when it passes ``validator`` (default: 1-128 of ``[A-Za-z0-9._-]``).
    ``generator``: makes new ids (default: uuid4 hex). ``response_header``: echo the id back.
    Whatever the validator or generator says, a value that cannot be sent as a header (CR, LF,
    NUL, non-latin-1) is never used.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        header_name: str = "x-request-id",
        trust_incoming: bool = True,
        validator: Callable[[str], bool] | None = None,
        generator: Callable[[], str] | None = None,
        response_header: bool = True,
    ) -> None:
        if not isinstance(header_name, str) or not _HEADER_NAME.fullmatch(header_name.lower()):
            raise ValueError(f"invalid header name: {header_name!r}")
        if validator is not None and not callable(validator):
            raise TypeError("validator must be a callable (str) -> bool")
        if generator is not None and not callable(generator):
            raise TypeError("generator must be a callable () -> str")
        self.app = app
        self.header_name = header_name.lower()
        self._header = self.header_name.encode("latin-1")
        self.trust_incoming = bool(trust_incoming)
        self.validator = validator
        self.generator = generator or uuid4_hex
        self.response_header = bool(response_header)
        sample = self.generator()
        if not isinstance(sample, str) or latin1_header(sample) is None or not sample:
            raise ValueError("generator must return a non-empty, header-safe latin-1 string")

    def _incoming(self, scope: Scope) -> str | None:
        value = first_header(scope, self._header)
        if value is None:
            return None
        if self.validator is None:
            return value.decode("ascii") if _DEFAULT_ID.fullmatch(value) is not None else None
        text = value.decode("latin-1")
        try:
            ok = self.validator(text)
        except Exception:  # a buggy validator must not turn bad input into a 500
            return None
        return text if ok and text and latin1_header(text) is not None else None

    def _generate(self) -> str:
        value = self.generator()
        if self.generator is uuid4_hex or (
            isinstance(value, str) and value and latin1_header(value) is not None
        ):
            return value
        return uuid4_hex()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        request_id = self._incoming(scope) if self.trust_incoming else None
        if not request_id:
            request_id = uuid4_hex() if self.generator is uuid4_hex else self._generate()
        state = scope.get("state")  # get_state(), inlined
        if state is None:
            state = scope["state"] = {}
        state["request_id"] = request_id
        token = _request_id.set(request_id)
        try:
            if not self.response_header:
                await self.app(scope, receive, send)
                return
            header = (self._header, request_id.encode("latin-1"))
            name = self._header
            size = len(name)

            async def send_with_id(message: Message) -> None:
                mtype = message["type"]
                if mtype == "http.response.start" or mtype == "websocket.accept":
                    headers = message.get("headers") or []
                    for key, _ in headers:
                        if len(key) == size and key.lower() == name:  # length first: cheaper
                            break  # the app set its own: keep it, never send two
                    else:
                        message["headers"] = [*headers, header]
                await send(message)

            await self.app(scope, receive, send_with_id)
        finally:
            _request_id.reset(token)


class RequestIDLogFilter(logging.Filter):
    """Adds ``record.request_id`` (``default`` outside a request) to every record it sees.

    Attach it to a handler (``handler.addFilter(RequestIDLogFilter())``) and use
    ``%(request_id)s`` in the format.
    """

    def __init__(self, name: str = "", *, attribute: str = "request_id", default: str = "-"):
        super().__init__(name)
        if not attribute.isidentifier():
            raise ValueError(f"invalid record attribute name: {attribute!r}")
        self.attribute = attribute
        self.default = default

    def filter(self, record: logging.LogRecord) -> bool:
        value = _request_id.get()
        setattr(record, self.attribute, self.default if value is None else value)
        return True
