"""Security response headers with OWASP defaults, added on ``http.response.start`` only.

Header lists are built once in ``__init__``; per request the middleware checks which names the
app already set (kept unless ``override=True``) and appends the rest, so no header is ever sent
twice and ``content-length`` and the body are never touched.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterable, Mapping

from ._asgi import ASGIApp, Message, Receive, Scope, Send, get_state
from .paths import PathSet, route_path

#: OWASP REST Security Cheat Sheet preset for JSON APIs: nothing may load or frame the response.
API_CSP = "default-src 'none'; frame-ancestors 'none'"
DEFAULT_PERMISSIONS_POLICY = (
    "accelerometer=(), autoplay=(), camera=(), display-capture=(), encrypted-media=(), "
    "fullscreen=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), midi=(), "
    "payment=(), picture-in-picture=(), publickey-credentials-get=(), screen-wake-lock=(), "
    "sync-xhr=(), usb=(), xr-spatial-tracking=()"
)
DEFAULT_HSTS = "max-age=31536000; includeSubDomains"
#: FastAPI's interactive docs load scripts and styles: the API CSP would blank them.
DEFAULT_CSP_EXCLUDE = ("/docs", "/docs/oauth2-redirect", "/redoc")
NONCE_PLACEHOLDER = "{nonce}"

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")


def _value(name: str, value: str) -> bytes:
    if not isinstance(value, str):
        raise TypeError(f"value for {name} must be a string or None, got {type(value).__name__}")
    try:
        encoded = value.strip().encode("latin-1")
    except UnicodeEncodeError as exc:
        raise ValueError(f"value for {name} must be latin-1 text") from exc
    if not encoded or any(c in encoded for c in (b"\r", b"\n", b"\0")):
        raise ValueError(f"value for {name} must be non-empty, without CR, LF or NUL")
    return encoded


def _name(name: str) -> bytes:
    if not isinstance(name, str) or not _TOKEN.fullmatch(name.lower()):
        raise ValueError(f"invalid header name: {name!r}")
    return name.lower().encode("latin-1")


class SecurityHeadersMiddleware:
    """Add security headers to every HTTP response.

    Each header option takes a value, or ``None`` to leave the header out. HSTS is sent only on
    ``https`` requests (scope scheme ``https``/``wss``) unless ``force_hsts=True`` (for TLS
    ended at a proxy that does not set the scheme). ``override=True`` replaces values the app
    set itself. ``hide_server=True`` removes the app's ``server`` and ``x-powered-by`` headers
    (the ASGI server's own ``server`` header is its setting, e.g. uvicorn ``--no-server-header``).
    ``csp_nonce=True`` puts a fresh nonce in ``request.state.csp_nonce`` and in place of
    ``{nonce}`` in the CSP. ``text/event-stream`` responses get ``x-accel-buffering: no`` so
    nginx does not buffer SSE. CSP is not sent on ``csp_exclude_paths`` (FastAPI's docs pages).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        hsts: str | None = DEFAULT_HSTS,
        force_hsts: bool = False,
        content_type_options: str | None = "nosniff",
        referrer_policy: str | None = "strict-origin-when-cross-origin",
        frame_options: str | None = "DENY",
        cross_origin_opener_policy: str | None = "same-origin",
        cross_origin_resource_policy: str | None = "same-origin",
        permissions_policy: str | None = DEFAULT_PERMISSIONS_POLICY,
        content_security_policy: str | None = API_CSP,
        csp_exclude_paths: Iterable[str] = DEFAULT_CSP_EXCLUDE,
        csp_nonce: bool = False,
        xss_protection: str | None = None,
        custom_headers: Mapping[str, str] | None = None,
        override: bool = False,
        hide_server: bool = False,
        sse_no_buffering: bool = True,
    ) -> None:
        self.app = app
        self.override = bool(override)
        self.force_hsts = bool(force_hsts)
        named: dict[str, str | None] = {
            "x-content-type-options": content_type_options,
            "referrer-policy": referrer_policy,
            "x-frame-options": frame_options,
            "cross-origin-opener-policy": cross_origin_opener_policy,
            "cross-origin-resource-policy": cross_origin_resource_policy,
            "permissions-policy": permissions_policy,
            "x-xss-protection": xss_protection,
        }
        for name, value in (custom_headers or {}).items():
            named[_name(name).decode()] = value
        common = [(_name(n), _value(n, v)) for n, v in named.items() if v is not None]
        self._hsts = (b"strict-transport-security", _value("hsts", hsts)) if hsts else None

        self._csp_before: bytes | None = None
        self._csp_after = b""
        self.csp_nonce = bool(csp_nonce)
        if content_security_policy is not None:
            csp = _value("content_security_policy", content_security_policy)
            if self.csp_nonce:
                if NONCE_PLACEHOLDER.encode() not in csp:
                    raise ValueError("csp_nonce=True needs '{nonce}' in content_security_policy")
                self._csp_before, _, self._csp_after = csp.partition(NONCE_PLACEHOLDER.encode())
            else:
                common.append((b"content-security-policy", csp))
        elif self.csp_nonce:
            raise ValueError("csp_nonce=True needs a content_security_policy with '{nonce}'")
        csp_exclude = PathSet(csp_exclude_paths)
        self._csp_exclude: PathSet | None = csp_exclude if len(csp_exclude) else None
        self._csp_static = (
            b"content-security-policy" if content_security_policy and not self.csp_nonce else None
        )

        self._plain: tuple[tuple[bytes, bytes], ...] = tuple(common)
        self._https = (*common, self._hsts) if self._hsts else self._plain
        self._plain_no_csp = tuple(h for h in self._plain if h[0] != b"content-security-policy")
        self._https_no_csp = tuple(h for h in self._https if h[0] != b"content-security-policy")
        self._remove = frozenset({b"server", b"x-powered-by"}) if hide_server else frozenset()
        self.sse_no_buffering = bool(sse_no_buffering)
        # The names of each precomputed header set, by identity: the per-request check is then
        # one set operation instead of a loop.
        self._names = {
            id(t): frozenset(k for k, _ in t)
            for t in (self._plain, self._https, self._plain_no_csp, self._https_no_csp)
        }
        # Every name this middleware may add, remove or look for: a response whose (lowercase)
        # names include none of them, the common case, only needs ours appended.
        self._watch = frozenset(
            {k for k, _ in self._https}
            | {b"content-security-policy", b"x-accel-buffering"}
            | self._remove
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = self.force_hsts or scope.get("scheme") == "https"
        with_csp = self._csp_exclude is None or route_path(scope) not in self._csp_exclude
        if with_csp:
            ours = self._https if https else self._plain
        else:
            ours = self._https_no_csp if https else self._plain_no_csp
        if self._csp_before is not None and with_csp:
            nonce = base64.b64encode(os.urandom(16)).decode("ascii")
            get_state(scope)["csp_nonce"] = nonce
            csp = (b"content-security-policy", self._csp_before + nonce.encode() + self._csp_after)
            ours = (*ours, csp)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = self._merge(message.get("headers") or (), ours)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _merge(
        self, raw: Iterable[tuple[bytes, bytes]], ours: tuple[tuple[bytes, bytes], ...]
    ) -> list[tuple[bytes, bytes]]:
        headers = list(raw)
        watch = self._watch
        content_type = None
        for key, value in headers:
            if type(key) is not bytes or not key.islower() or key in watch:
                return self._merge_general(headers, ours)
            if key == b"content-type" and content_type is None:  # the first one counts
                content_type = value
        headers.extend(ours)
        if (
            self.sse_no_buffering
            and content_type is not None
            and bytes(content_type).lower().startswith(b"text/event-stream")
        ):
            headers.append((b"x-accel-buffering", b"no"))
        return headers

    def _merge_general(
        self, headers: list[tuple[bytes, bytes]], ours: tuple[tuple[bytes, bytes], ...]
    ) -> list[tuple[bytes, bytes]]:
        """Any header list: upper-case or bytearray names, app values to keep or replace,
        headers to remove."""
        names = [k for k, _ in headers]
        lowercase = True
        try:  # the common case: lowercase bytes names (Starlette, FastAPI, our own layers)
            if not b"".join(names).islower():
                raise TypeError
            present = set(names)
        except TypeError:  # upper case, bytearray or no letters at all: normalize each name
            present = {bytes(k).lower() for k in names}
            lowercase = False
        if self._remove and not present.isdisjoint(self._remove):
            headers = [h for h in headers if bytes(h[0]).lower() not in self._remove]
        mine = self._names.get(id(ours))
        if mine is None:
            mine = frozenset(k for k, _ in ours)
        if present.isdisjoint(mine):
            headers.extend(ours)
        elif self.override:
            headers = [h for h in headers if bytes(h[0]).lower() not in mine]
            headers.extend(ours)
        else:
            headers.extend(h for h in ours if h[0] not in present)
        if (
            self.sse_no_buffering
            and b"content-type" in present
            and b"x-accel-buffering" not in present
        ):
            for key, value in headers:
                if (
                    (key == b"content-type")
                    if lowercase
                    else (bytes(key).lower() == b"content-type")
                ):
                    if bytes(value).lower().startswith(b"text/event-stream"):
                        headers.append((b"x-accel-buffering", b"no"))
                    break
        return headers
