"""Token location: RFC 6750 bearer header, cookies, websocket query parameter, CSRF defence."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentos_mw.auth import TokenSource
from agentos_mw.auth.errors import AuthError
from agentos_mw.auth.tokens import CSRFGuard, TokenExtractor
from tests.driver import call, http_scope
from tests.test_auth_common import OTHER_SECRET, bearer, make, mint


def extract(headers: list[tuple[str, str]], source: str = "header", **kw: object) -> bytes | None:
    extractor = TokenExtractor(source, kw.pop("header_key", "Authorization"), "access_token", **kw)  # type: ignore[arg-type]
    token, _ = extractor.extract(http_scope(headers=headers))
    return token


@pytest.mark.parametrize(
    "value",
    [
        "Bearer abc.def.ghi",
        "bearer abc.def.ghi",
        "BEARER abc.def.ghi",
        "Bearer   abc.def.ghi  ",
        "  Bearer\tabc.def.ghi",
    ],
)
def test_bearer_scheme_is_case_insensitive_and_tolerates_spaces(value: str) -> None:
    assert extract([("authorization", value)]) == b"abc.def.ghi"


@pytest.mark.parametrize(
    "value", ["Basic dXNlcjpwYXNz", "Token abc.def.ghi", "abc.def.ghi", "Bearerabc.def.ghi", ""]
)
def test_other_schemes_mean_no_bearer_token(value: str) -> None:
    assert extract([("authorization", value)]) is None


@pytest.mark.parametrize("value", ["Bearer", "Bearer  ", "Bearer a b", "Bearer a.b.c extra"])
def test_malformed_bearer_header_is_a_400(value: str) -> None:
    with pytest.raises(AuthError) as info:
        extract([("authorization", value)])
    assert info.value.status == 400


def test_two_authorization_headers_are_rejected() -> None:
    with pytest.raises(AuthError) as info:
        extract([("authorization", "Bearer a.b.c"), ("authorization", "Bearer a.b.c")])
    assert info.value.detail == "Multiple tokens sent"


def test_custom_header_accepts_a_bare_token() -> None:
    assert extract([("x-api-token", "abc.def.ghi")], header_key="X-API-Token") == b"abc.def.ghi"
    assert (
        extract([("x-api-token", "Bearer abc.def.ghi")], header_key="X-API-Token") == b"abc.def.ghi"
    )


def test_cookie_parsing_finds_the_configured_cookie() -> None:
    headers = [("cookie", 'theme=dark; access_token="abc.def.ghi"; other=1')]
    assert extract(headers, "cookie") == b"abc.def.ghi"
    assert extract([("cookie", "access_token_x=1; xaccess_token=2")], "cookie") is None


def test_two_cookies_of_the_configured_name_are_rejected() -> None:
    for headers in (
        [("cookie", "access_token=a.b.c; access_token=d.e.f")],
        [("cookie", "access_token=a.b.c"), ("cookie", "access_token=a.b.c")],
    ):
        with pytest.raises(AuthError):
            extract(headers, "cookie")


def test_both_mode_header_and_cookie_must_agree() -> None:
    assert (
        extract([("authorization", "Bearer a.b.c"), ("cookie", "access_token=a.b.c")], "both")
        == b"a.b.c"
    )
    with pytest.raises(AuthError):
        extract([("authorization", "Bearer a.b.c"), ("cookie", "access_token=x.y.z")], "both")


def test_header_mode_ignores_cookies_and_cookie_mode_ignores_headers() -> None:
    assert extract([("cookie", "access_token=a.b.c")], "header") is None
    assert extract([("authorization", "Bearer a.b.c")], "cookie") is None


def test_invalid_configuration_is_refused() -> None:
    with pytest.raises(ValueError):
        TokenExtractor("query", "Authorization", "access_token")
    with pytest.raises(ValueError):
        TokenExtractor("header", "Bad Header", "access_token")
    with pytest.raises(ValueError):
        TokenExtractor("cookie", "Authorization", "bad;name")
    with pytest.raises(ValueError):
        CSRFGuard(["*"])
    with pytest.raises(TypeError):
        CSRFGuard("https://a.example")  # type: ignore[arg-type]


def test_token_source_values_match_agno() -> None:
    assert [s.value for s in TokenSource] == ["header", "cookie", "both"]
    assert TokenSource("both") is TokenSource.BOTH


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(["header", "cookie", "both"]))
def test_extractor_only_raises_auth_errors(value: bytes, source: str) -> None:
    extractor = TokenExtractor(source, "Authorization", "access_token", websocket_query_token=True)
    scope = http_scope(type="websocket", query_string=value)
    scope["headers"] = [(b"authorization", value), (b"cookie", value)]
    try:
        extractor.extract(scope)
    except AuthError as exc:
        assert exc.status in (400, 401)


# -- through the middleware ------------------------------------------------------------------


@pytest.mark.anyio
async def test_cookie_mode_authenticates_from_the_cookie() -> None:
    mw, app = make(token_source="cookie")
    result = await call(mw, http_scope("GET", "/agents", [("cookie", f"access_token={mint()}")]))
    assert result.status == 200 and app.state["user_id"] == "user-1"
    missing = await call(mw, http_scope("GET", "/agents"))
    assert missing.status == 401 and missing.json() == {"detail": "Authentication cookie missing"}


@pytest.mark.anyio
async def test_both_mode_an_invalid_header_does_not_fall_back_to_a_valid_cookie() -> None:
    mw, _ = make(token_source=TokenSource.BOTH)
    bad = mint(key=OTHER_SECRET)
    result = await call(
        mw, http_scope("GET", "/agents", [*bearer(bad), ("cookie", f"access_token={mint()}")])
    )
    assert result.status in (400, 401)
    only_bad_header = await call(mw, http_scope("GET", "/agents", bearer(bad)))
    assert only_bad_header.status == 401
    cookie_only = await call(
        mw, http_scope("GET", "/agents", [("cookie", f"access_token={mint()}")])
    )
    assert cookie_only.status == 200
    missing = await call(mw, http_scope("GET", "/agents"))
    assert "cookie" in missing.json()["detail"]


@pytest.mark.anyio
async def test_both_mode_basic_auth_header_falls_back_to_the_cookie() -> None:
    mw, _ = make(token_source="both")
    headers = [("authorization", "Basic dXNlcjpwYXNz"), ("cookie", f"access_token={mint()}")]
    assert (await call(mw, http_scope("GET", "/agents", headers))).status == 200


@pytest.mark.anyio
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_cookie_auth_on_unsafe_methods_needs_a_same_origin_signal(method: str) -> None:
    mw, _ = make(token_source="cookie")
    cookie = ("cookie", f"access_token={mint()}")
    host = ("host", "api.example.com")

    async def status(*extra: tuple[str, str], scheme: str = "https") -> int:
        scope = http_scope(method, "/agents/a/runs", [cookie, host, *extra], scheme=scheme)
        return (await call(mw, scope)).status

    assert await status() == 403  # no Origin, no Sec-Fetch-Site
    assert await status(("origin", "https://evil.example")) == 403
    assert await status(("sec-fetch-site", "cross-site")) == 403
    assert (
        await status(("sec-fetch-site", "same-site"), ("origin", "https://app.example.com")) == 403
    )
    assert await status(("origin", "https://api.example.com")) == 200
    assert await status(("origin", "https://api.example.com:443")) == 200
    assert await status(("origin", "http://api.example.com")) == 403  # scheme differs
    assert await status(("sec-fetch-site", "same-origin")) == 200
    assert await status(("sec-fetch-site", "none")) == 200


@pytest.mark.anyio
async def test_csrf_trusted_origins_and_opt_out() -> None:
    cookie = ("cookie", f"access_token={mint()}")
    mw, _ = make(token_source="cookie", trusted_origins=["https://app.example.com/"])
    ok = http_scope("POST", "/x", [cookie, ("origin", "https://APP.example.com")])
    assert (await call(mw, ok)).status == 200
    off, _ = make(token_source="cookie", csrf_protection=False)
    assert (await call(off, http_scope("POST", "/x", [cookie]))).status == 200


@pytest.mark.anyio
async def test_csrf_does_not_apply_to_safe_methods_or_header_tokens() -> None:
    mw, _ = make(token_source="both")
    token = mint()
    cookie = ("cookie", f"access_token={token}")
    assert (await call(mw, http_scope("GET", "/x", [cookie]))).status == 200
    # the same token in the Authorization header proves the caller is not a cross-site form
    headers = [cookie, *bearer(token)]
    assert (await call(mw, http_scope("POST", "/x", headers))).status == 200


@pytest.mark.anyio
async def test_csrf_failure_body_is_fixed() -> None:
    mw, _ = make(token_source="cookie")
    result = await call(mw, http_scope("POST", "/x", [("cookie", f"access_token={mint()}")]))
    assert result.status == 403
    assert result.json() == {"detail": "Cross-site request rejected"}
    assert result.header("www-authenticate") is None
