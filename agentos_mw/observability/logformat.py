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

_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}
_CONTROL.update({0x2028: "\\u2028", 0x2029: "\\u2029"})
_TEXT = {**_CONTROL, ord('"'): '\\"', ord("\\"): "\\\\"}


def escape(value: str, limit: int = 2048) -> str:
    """``value`` with C0/C1 controls and line separators as ``\\xNN``; cut at ``limit``."""
    if len(value) > limit:
        value = value[:limit] + "..."
    if value.isprintable():
        return value
    return value.translate(_CONTROL)


def quote(value: str) -> str:
    """``value`` in double quotes for text logs (quotes and backslashes escaped too)."""
    return '"' + value.translate(_TEXT) + '"'


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
    wanted: frozenset[str] | None,
    secret: frozenset[str],
    limit: int = 512,
) -> dict[str, str]:
    """Selected headers (``wanted``; None = all) as text, sensitive ones redacted."""
    out: dict[str, str] = {}
    for raw_name, raw_value in headers:
        name = bytes(raw_name).decode("latin-1").lower()
        if wanted is not None and name not in wanted:
            continue
        value = REDACTED if name in secret else escape(bytes(raw_value).decode("latin-1"), limit)
        name = escape(name, 128)
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


def format_json(fields: Mapping[str, Any]) -> str:
    """One JSON object per line (non-ASCII escaped, so the line is plain ASCII)."""
    return json.dumps(fields, separators=(",", ":"), default=str)


def format_text(fields: Mapping[str, Any]) -> str:
    """``client "METHOD /path?query HTTP/1.1" status bytes key=value ...`` on one line."""
    target = fields["path"]
    if fields.get("query"):
        target = f"{target}?{fields['query']}"
    if fields["type"] == "websocket":
        request = f"WEBSOCKET {target}"
    else:
        request = f"{fields['method']} {target} HTTP/{fields['http_version']}"
    parts = [
        fields["client"] or "-",
        quote(request),
        str(fields["status"]),
        str(fields["bytes"]),
        f"duration_ms={fields['duration_ms']}",
        f"ttfb_ms={fields['ttfb_ms']}",
        f"route={quote(fields['route']) if fields['route'] is not None else '-'}",
        f"request_id={fields['request_id'] or '-'}",
    ]
    if fields.get("user_id") is not None:
        parts.append(f"user_id={quote(fields['user_id'])}")
    if fields.get("disconnected"):
        parts.append("disconnected=true")
    if fields.get("exception"):
        parts.append(f"exception={fields['exception']}")
    for key in ("headers", "response_headers"):
        for name, value in (fields.get(key) or {}).items():
            prefix = "h" if key == "headers" else "rh"
            parts.append(f"{prefix}.{name}={quote(value)}")
    return " ".join(parts)
