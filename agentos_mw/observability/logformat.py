"""Turning one access record into safe text: control characters escaped, secrets redacted.

Everything here runs once per logged request, on strings a client chose; nothing may raise.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote_plus

REDACTED = "[REDACTED]"

#: Request/response headers whose values never reach a log line.
DEFAULT_REDACT_HEADERS: tuple[str, ...] = (
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api-key",
    "x-auth-token",
    "x-access-token",
    "x-csrf-token",
    "x-xsrf-token",
)

#: Query parameters whose values never reach a log line (compared case-insensitively).
DEFAULT_REDACT_QUERY: tuple[str, ...] = (
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "api_key",
    "apikey",
    "key",
    "secret",
    "client_secret",
    "password",
    "code",
    "jwt",
    "auth",
    "signature",
    "sig",
)

_TEXT = {ord('"'): '\\"', ord("\\"): "\\\\"}


def escape(value: str, limit: int = 2048) -> str:
    """``value`` with every non-printable character (C0/C1 controls, line separators, bidi
    overrides, lone surrogates) as ``\\xNN``/``\\uNNNN``; cut at ``limit``."""
    if len(value) > limit:
        value = value[:limit] + "..."
    if value.isprintable():
        return value
    # Controls, bidi overrides, unassigned code points, lone surrogates: hostile input only.
    return "".join(ch if ch.isprintable() else _escape_char(ord(ch)) for ch in value)


def _escape_char(code: int) -> str:
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def names(values: Iterable[str], what: str) -> frozenset[str]:
    """Validate a configured list of names and lowercase it."""
    if isinstance(values, str):
        raise TypeError(f"{what} must be a list of names, not a single string")
    out = set()
    for value in values:
        if not isinstance(value, str) or not value:
            raise TypeError(f"{what} entries must be non-empty strings, got {value!r}")
        out.add(value.lower())
    return frozenset(out)


def redact_query(query: bytes, secret: frozenset[str], limit: int = 2048) -> str:
    """The query string with the values of ``secret`` parameters replaced; escaped."""
    text = query.decode("latin-1")
    if secret:
        parts = text.split("&")
        for index, part in enumerate(parts):
            name, sep, _ = part.partition("=")
            if unquote_plus(name).strip().lower() in secret:
                parts[index] = name + sep + REDACTED if sep else part
        text = "&".join(parts)
    return escape(text, limit)


def pick_headers(
    headers: Iterable[tuple[bytes, bytes]],
    wanted: frozenset[bytes] | None,
    secret: frozenset[str],
    limit: int = 512,
) -> dict[str, str]:
    """Selected headers (``wanted``, lowercase bytes; None = all) as text, secrets redacted."""
    out: dict[str, str] = {}
    for raw_name, raw_value in headers:
        if wanted is not None and raw_name not in wanted:
            continue
        name = bytes(raw_name).decode("latin-1").lower()
        if name in secret:
            value = REDACTED
        else:
            value = bytes(raw_value).decode("latin-1")
            if len(value) > limit or not value.isprintable():
                value = escape(value, limit)
        if len(name) > 128 or not name.isprintable():
            name = escape(name, 128)
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


def format_json(fields: Mapping[str, Any]) -> str:
    """One JSON object per line (non-ASCII escaped, so the line is plain ASCII)."""
    return json.dumps(fields, separators=(",", ":"), default=str)


def _q(value: str) -> str:
    """``value`` in double quotes, quotes and backslashes escaped."""
    if '"' in value or "\\" in value:
        value = value.translate(_TEXT)
    return f'"{value}"'


def format_text(fields: Mapping[str, Any]) -> str:
    """``client "METHOD /path?query HTTP/1.1" status bytes key=value ...`` on one line.

    String fields are already control-character escaped; quoted ones get quotes escaped too.
    """
    # Inline fast paths: this runs once per request, and function calls dominate its cost.
    query = fields["query"]
    target = f"{fields['path']}?{query}" if query else fields["path"]
    if fields["type"] == "websocket":
        request = f"WEBSOCKET {target}"
    else:
        request = f"{fields['method']} {target} HTTP/{fields['http_version']}"
    if '"' in request or "\\" in request:
        request = request.translate(_TEXT)
    client = fields["client"]
    if not client:
        client = "-"
    elif " " in client or '"' in client:
        client = _q(client)
    route = fields["route"]
    if route is None:
        route = "-"
    elif '"' in route or "\\" in route:
        route = f'"{route.translate(_TEXT)}"'
    else:
        route = f'"{route}"'
    request_id = fields["request_id"]
    if not request_id:
        request_id = "-"
    elif " " in request_id or '"' in request_id:
        request_id = _q(request_id)
    line = (
        f'{client} "{request}" {fields["status"]} {fields["bytes"]}'
        f" duration_ms={fields['duration_ms']} ttfb_ms={fields['ttfb_ms']}"
        f" route={route} request_id={request_id}"
    )
    user_id = fields["user_id"]
    if user_id is not None:
        line += f" user_id={_q(user_id)}"
    if fields["disconnected"]:
        line += " disconnected=true"
    if "exception" in fields:
        line += f" exception={fields['exception']}"
    headers = fields.get("headers")
    if headers:
        for name, value in headers.items():
            line += f" h.{name}={_q(value)}"
    headers = fields.get("response_headers")
    if headers:
        for name, value in headers.items():
            line += f" rh.{name}={_q(value)}"
    return line
