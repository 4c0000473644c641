"""Hostile HTTP input through the complete stack: whatever a client sends, the stack answers once,
below 500, with headers a server can send, and never lets a forged identity reach the app."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.driver import call, http_scope
from tests.hostile.stack import (
    GOOD_SUBJECTS,
    ORIGIN,
    CheckingHandler,
    Seen,
    bad_tokens,
    check_http,
    good_token,
    rsa_token,
)

BAD = bad_tokens()
GOOD = [good_token("alice"), good_token("bob", ["agents:read"]), rsa_token("bob")]
TOKENS = [*GOOD, *BAD.values()]

PATHS = [
    "/",
    "/health",
    "/agents",
    "/agents/",
    "/agents/a1/runs",
    "/agents/a1/runs/",
    "/ws",
    "//agents",
    "/agents/../health",
    "/health/../agents",
    "/AGENTS",
    "/agents%2F..%2Fhealth",
    "/health\x00/agents",
    "/health\r\nx-injected: 1",
    "/\ud800",
    "",
]
METHODS = ["GET", "HEAD", "OPTIONS", "POST", "PUT", "DELETE", "PATCH", "TRACE", "CONNECT"]


def interesting_values(name: bytes) -> st.SearchStrategy[bytes]:
    tokens = st.sampled_from(TOKENS).map(str.encode)
    by_name: dict[bytes, st.SearchStrategy[bytes]] = {
        b"authorization": st.one_of(
            tokens.map(lambda t: b"Bearer " + t),
            tokens.map(lambda t: b"bEaReR\t " + t + b"  "),
            st.sampled_from(
                [
                    b"Bearer",
                    b"Bearer ",
                    b"Basic YWxpY2U6c2VjcmV0",
                    b"Bearer a b",
                    "Bearer ünïcødé".encode(),
                    b"Bearer \xff\xfe\x00",
                    b"Bearer " + b"A" * 70_000,
                    b"Bearer ..",
                    b"Bearer e30.e30.",
                ]
            ),
        ),
        b"cookie": st.one_of(
            tokens.map(lambda t: b"access_token=" + t),
            tokens.map(lambda t: b'a=1; access_token="' + t + b'"; access_token=x'),
            st.binary(max_size=64).map(lambda b: b"access_token=" + b),
        ),
        b"origin": st.sampled_from([ORIGIN.encode(), b"null", b"https://evil.example", b"\xff"]),
        b"access-control-request-method": st.sampled_from([b"GET", b"POST", b"\r\n", b"\xff"]),
        b"x-forwarded-for": st.one_of(
            st.sampled_from([b"1.2.3.4", b"1.2.3.4, 10.0.0.1", b"::1", b"unknown", b",,,"]),
            st.binary(max_size=40),
        ),
        b"forwarded": st.sampled_from(
            [b'for="[2001:db8::1]:80";proto=https', b"for=unknown", b"for=\xff;;", b'for="']
        ),
        b"x-request-id": st.one_of(
            st.sampled_from([b"abc-123", b"a" * 129, b"id\r\nset-cookie: x=1", b"\xc3\xa9"]),
            st.binary(max_size=40),
        ),
        b"sec-fetch-site": st.sampled_from([b"same-origin", b"cross-site", b"none", b"\x00"]),
        b"host": st.sampled_from([b"ui.example", b"", b"\xff:99999", b"a" * 300]),
        b"content-length": st.sampled_from([b"-1", b"abc", b"9" * 30, b"0"]),
    }
    return by_name.get(name.lower(), st.binary(max_size=80))


NAMES = [
    b"authorization",
    b"Authorization",
    b"cookie",
    b"origin",
    b"access-control-request-method",
    b"x-forwarded-for",
    b"forwarded",
    b"x-request-id",
    b"X-Request-ID",
    b"sec-fetch-site",
    b"host",
    b"content-length",
    b"user-agent",
]

header = st.one_of(
    st.sampled_from(NAMES).flatmap(lambda n: st.tuples(st.just(n), interesting_values(n))),
    st.tuples(st.binary(max_size=24), st.binary(max_size=80)),
)
path_text = st.one_of(
    st.sampled_from(PATHS),
    st.text(st.characters(blacklist_categories=()), max_size=40).map(lambda p: "/" + p),
    st.tuples(st.sampled_from(PATHS), st.text(max_size=12)).map("".join),
)
client = st.sampled_from(
    [
        None,
        ("127.0.0.1", 50000),
        ("10.1.2.3", 443),
        ("::1", 0),
        ("", 0),
        ("not an address", -1),
        ("\x00\r\n", 70000),
    ]
)


@st.composite
def scopes(draw: st.DrawFn) -> tuple[dict[str, Any], bytes]:
    path = draw(path_text)
    root_path = draw(st.sampled_from(["", "", "/api"]))
    if root_path and draw(st.booleans()):
        path = root_path + path
    raw_path = draw(
        st.one_of(
            st.just(path.encode("utf-8", "surrogatepass")),
            st.binary(max_size=40),
            st.none(),
        )
    )
    scope = http_scope(
        draw(st.one_of(st.sampled_from(METHODS), st.text(max_size=8))),
        "/",
        draw(st.lists(header, max_size=12)),
        query_string=draw(
            st.one_of(
                st.binary(max_size=80),
                st.sampled_from(TOKENS).map(lambda t: b"access_token=" + t.encode()),
            )
        ),
        client=draw(client),
        scheme=draw(st.sampled_from(["http", "https"])),
        http_version=draw(st.sampled_from(["1.0", "1.1", "2", "3", "0.9", ""])),
    )
    scope["root_path"] = root_path
    scope["path"] = path
    if raw_path is None:
        del scope["raw_path"]
    else:
        scope["raw_path"] = raw_path
    if draw(st.booleans()):
        scope["server"] = None
    if draw(st.booleans()):
        scope["extensions"] = {"http.response.trailers": {}, "http.response.debug": {}}
    return scope, draw(st.binary(max_size=64))


def run_one(
    runner: asyncio.Runner,
    stack: tuple[Any, Seen, CheckingHandler],
    scope: dict[str, Any],
    body: bytes,
) -> int:
    app, seen, handler = stack
    before = len(seen.users)
    errors = len(seen.app_errors)
    try:
        result = runner.run(call(app, scope, body))
    except Exception as exc:
        # only the app's own exception may come out, unchanged (the stack never masks it)
        assert seen.app_errors[errors:] and exc is seen.app_errors[-1], exc
        return 0
    status = check_http(result.messages, app_failed=len(seen.app_errors) > errors)
    reached = seen.users[before:]
    assert all(user in GOOD_SUBJECTS for user in reached), (reached, scope)
    assert not handler.bad, handler.bad[:3]
    return status


@settings(
    max_examples=2500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=scopes())
def test_any_http_request_gets_one_safe_answer_below_500(
    runner: asyncio.Runner,
    stack: tuple[Any, Seen, CheckingHandler],
    case: tuple[dict[str, Any], bytes],
) -> None:
    scope, body = case
    run_one(runner, stack, scope, body)


@settings(max_examples=300, deadline=None)
@given(
    token=st.sampled_from(sorted(BAD)),
    where=st.sampled_from(["header", "cookie", "both"]),
    method=st.sampled_from(["GET", "POST", "HEAD"]),
    path=st.sampled_from(["/agents", "/agents/a1/runs", "/api/agents"]),
)
def test_forged_expired_and_malformed_tokens_never_reach_the_app(
    runner: asyncio.Runner,
    stack: tuple[Any, Seen, CheckingHandler],
    token: str,
    where: str,
    method: str,
    path: str,
) -> None:
    raw = BAD[token].encode()
    headers: list[tuple[bytes, bytes]] = []
    if where in ("header", "both"):
        headers.append((b"authorization", b"Bearer " + raw))
    if where in ("cookie", "both"):
        headers += [(b"cookie", b"access_token=" + raw), (b"sec-fetch-site", b"same-origin")]
    scope = http_scope(method, path, headers, root_path="/api" if path.startswith("/api") else "")
    if path.startswith("/api"):
        scope["path"] = path
    status = run_one(runner, stack, scope, b"")
    assert status in (400, 401), (token, status)


def test_valid_tokens_do_reach_the_app(
    runner: asyncio.Runner, stack: tuple[Any, Seen, CheckingHandler]
) -> None:
    """The other half of the property above: the stack is not just refusing everything."""
    _, seen, _ = stack
    for token in GOOD:
        result = runner.run(
            call(stack[0], http_scope("GET", "/agents", [(b"authorization", f"Bearer {token}")]))
        )
        assert check_http(result.messages) == 200
        assert result.json()["user"] in GOOD_SUBJECTS
    assert seen.users[-len(GOOD) :] == ["alice", "bob", "bob"]


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([(b"x-h%d" % i, b"v") for i in range(10_000)], id="10000-headers"),
        pytest.param(
            [(b"x-forwarded-for", b"1.2.3.4," * 10_000), (b"user-agent", b"\xff" * (1 << 20))],
            id="1MiB-values",
        ),
        pytest.param([(b"authorization", b"Bearer " + b"a" * (1 << 20))], id="1MiB-token"),
        pytest.param([(b"cookie", b"access_token=x;" * 70_000)], id="1MiB-cookie"),
        pytest.param(
            [(b"authorization", b"Bearer x")] * 1000 + [(b"x-request-id", b"\r\n" * 1000)],
            id="repeated-authorization",
        ),
        pytest.param([(b"origin", b"\x00" * (1 << 20)), (b"sec-fetch-site", b"a" * (1 << 20))]),
    ],
)
@pytest.mark.parametrize("path", ["/agents", "/health", "/agents/a1/runs"])
def test_huge_requests_are_answered(
    runner: asyncio.Runner,
    stack: tuple[Any, Seen, CheckingHandler],
    headers: list[tuple[bytes, bytes]],
    path: str,
) -> None:
    for method in ("GET", "POST", "OPTIONS"):
        status = run_one(runner, stack, http_scope(method, path, headers), b"")
        if path != "/health" and method != "OPTIONS":
            assert status in (400, 401, 405), status


def test_huge_path_and_query(
    runner: asyncio.Runner, stack: tuple[Any, Seen, CheckingHandler]
) -> None:
    scope = http_scope("GET", "/agents/" + "\u202e\x00" * 500_000, query_string=b"a=%00" * 200_000)
    assert run_one(runner, stack, scope, b"") == 401
    scope = http_scope("GET", "/health", query_string=b"\xff" * (1 << 20))
    assert run_one(runner, stack, scope, b"") == 200


def test_head_and_preflight(
    runner: asyncio.Runner, stack: tuple[Any, Seen, CheckingHandler]
) -> None:
    token = GOOD[0].encode()
    head = runner.run(
        call(stack[0], http_scope("HEAD", "/agents", [(b"authorization", b"Bearer " + token)]))
    )
    assert check_http(head.messages) == 200  # the server drops a HEAD body
    assert head.header("x-content-type-options") == "nosniff"
    preflight = http_scope(
        "OPTIONS",
        "/agents",
        [(b"origin", ORIGIN.encode()), (b"access-control-request-method", b"POST")],
    )
    result = runner.run(call(stack[0], preflight))
    assert check_http(result.messages) == 200
    assert result.header("access-control-allow-origin") == ORIGIN
    # a preflight from a foreign origin is refused by CORS, not passed to the app or auth
    foreign = http_scope(
        "OPTIONS",
        "/agents",
        [(b"origin", b"https://evil.example"), (b"access-control-request-method", b"POST")],
    )
    assert check_http(runner.run(call(stack[0], foreign)).messages) == 400
    # OPTIONS without the preflight header is an ordinary request: it needs a token
    plain = runner.run(call(stack[0], http_scope("OPTIONS", "/agents")))
    assert check_http(plain.messages) == 401
