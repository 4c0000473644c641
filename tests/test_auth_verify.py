"""Verification beyond PyJWT's defaults, and every rejection's fixed message."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.driver import Result, call, http_scope
from tests.test_auth_common import OTHER_SECRET, SECRET, bearer, claims, make, mint, raw_token

HEADER = '{"alg":"HS256","typ":"JWT"}'


async def send(token: str, **options: Any) -> Result:
    mw, _ = make(**options)
    return await call(mw, http_scope("GET", "/agents", bearer(token)))


def payload_json(**overrides: Any) -> str:
    return json.dumps(claims(**overrides))


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("token", "detail"),
    [
        (mint(claims(exp=int(time.time()) - 60)), "Token has expired"),
        (mint(claims(nbf=int(time.time()) + 600)), "Token is not yet valid"),
        (mint(claims(iat=int(time.time()) + 600)), "Token is not yet valid"),
        (mint(claims(exp=None)), "Token is missing a required claim"),
        (mint(key=OTHER_SECRET), "Invalid token"),
        ("not-a-jwt", "Invalid token"),
        ("a.b.c", "Invalid token"),
        ("a.b.", "Invalid token"),
        (".b.c", "Invalid token"),
    ],
)
async def test_rejections_have_fixed_messages_and_rfc6750_challenge(
    token: str, detail: str
) -> None:
    result = await send(token)
    assert result.status == 401
    assert result.json() == {"detail": detail}
    assert result.header("www-authenticate") == 'Bearer realm="api", error="invalid_token"'
    assert result.header("content-type") == "application/json"


@pytest.mark.anyio
async def test_missing_token_challenge_has_no_error_code() -> None:
    mw, _ = make(realm="agents")
    result = await call(mw, http_scope("GET", "/agents"))
    assert result.status == 401
    assert result.json() == {"detail": "Authorization header missing"}
    assert result.header("www-authenticate") == 'Bearer realm="agents"'


@pytest.mark.anyio
async def test_leeway_tolerates_small_clock_skew() -> None:
    token = mint(claims(exp=int(time.time()) - 5))
    assert (await send(token)).status == 200  # default leeway 10 s
    assert (await send(token, leeway=0)).status == 401


@pytest.mark.anyio
async def test_exp_is_required_by_default_and_can_be_relaxed() -> None:
    token = mint(claims(exp=None))
    assert (await send(token)).status == 401
    assert (await send(token, required_claims=[])).status == 200
    no_jti = mint(claims())
    assert (await send(no_jti, required_claims=["exp", "jti"])).json() == {
        "detail": "Token is missing a required claim"
    }


@pytest.mark.anyio
@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
async def test_time_claims_must_be_numbers(claim: str) -> None:
    now = int(time.time())
    for value in (str(now + 600), True, [now + 600], {"t": 1}):
        if claim != "exp" and isinstance(value, str):
            value = str(now - 600)
        token = raw_token(HEADER, payload_json(**{claim: value}))
        assert (await send(token)).status == 401, (claim, value)
    assert (await send(raw_token(HEADER, payload_json(exp=now + 600.5)))).status == 200


@pytest.mark.anyio
async def test_nan_and_infinity_are_not_json() -> None:
    body = payload_json().replace(f'"exp": {claims()["exp"]}', '"exp": Infinity')
    assert "Infinity" in body
    assert (await send(raw_token(HEADER, body))).status == 401
    body = payload_json(extra=1).replace('"extra": 1', '"extra": NaN')
    assert (await send(raw_token(HEADER, body))).status == 401


@pytest.mark.anyio
async def test_duplicate_member_names_are_rejected_in_payload_and_header() -> None:
    body = payload_json()[:-1] + ', "sub": "admin"}'
    assert (await send(raw_token(HEADER, body))).status == 401
    nested = payload_json(ctx={"a": 1})[:-1] + "}"
    nested = nested.replace('{"a": 1}', '{"a": 1, "a": 2}')
    assert (await send(raw_token(HEADER, nested))).status == 401
    dup_header = '{"alg":"HS256","alg":"HS256"}'
    assert (await send(raw_token(dup_header, payload_json()))).status == 401
    assert (await send(raw_token(HEADER, payload_json()))).status == 200


@pytest.mark.anyio
async def test_token_charset_is_strict() -> None:
    good = mint()
    header, payload, signature = good.split(".")
    for bad in (
        f"{header}.{payload}.{signature}=",
        f"{header}=.{payload}.{signature}",
        f"{header}.{payload}.{signature}.extra",
        good[:-2] + "é" + good[-1],
        good.replace(".", "..", 1),
    ):
        result = await send(bad)
        assert result.status in (400, 401), bad
        assert result.status != 500


@pytest.mark.anyio
async def test_non_ascii_bearer_token_is_a_401_not_a_500() -> None:
    mw, _ = make()
    scope = http_scope("GET", "/agents")
    scope["headers"] = [(b"authorization", "Bearer ñandú.ü.ö".encode())]
    assert (await call(mw, scope)).status == 401


@pytest.mark.anyio
async def test_max_token_bytes() -> None:
    big = mint(claims(padding="x" * 9000))
    result = await send(big)
    assert result.status == 401 and result.json() == {"detail": "Token too large"}
    assert (await send(big, max_token_bytes=20000)).status == 200
    with pytest.raises(ValueError):
        make(max_token_bytes=0)


@pytest.mark.anyio
async def test_audience_string_list_and_custom_claim() -> None:
    token = mint(claims(aud=["agent-os-1", "other"]))
    assert (await send(token, audience="agent-os-1")).status == 200
    assert (await send(token, audience=["x", "other"])).status == 200
    wrong = await send(token, audience="agent-os-2")
    assert wrong.json() == {"detail": "Invalid token audience"}
    assert "agent-os-2" not in wrong.body.decode()
    assert (await send(mint(), audience="agent-os-1")).status == 401  # no aud at all
    # Agno: verify_audience=False skips the check even when an audience is given
    assert (await send(token, audience="agent-os-2", verify_audience=False)).status == 200
    # without an expected audience, a token's aud does not matter
    assert (await send(token)).status == 200
    custom = mint(claims(os_id="agent-os-1"))
    assert (await send(custom, audience="agent-os-1", audience_claim="os_id")).status == 200
    assert (await send(custom, audience="nope", audience_claim="os_id")).status == 401
    assert (
        await send(mint(claims(os_id=5)), audience="nope", audience_claim="os_id")
    ).status == 401


@pytest.mark.anyio
async def test_verify_audience_without_audience_uses_the_agentos_id() -> None:
    class App:
        class state:
            agent_os_id = "os-123"

    mw, _ = make(verify_audience=True)
    good = http_scope("GET", "/agents", bearer(mint(claims(aud="os-123"))), app=App())
    assert (await call(mw, good)).status == 200
    bad = http_scope("GET", "/agents", bearer(mint(claims(aud="os-999"))), app=App())
    assert (await call(mw, bad)).status == 401
    missing, _ = make(verify_audience=True)
    no_app = http_scope("GET", "/agents", bearer(mint(claims(aud="os-123"))))
    assert (await call(missing, no_app)).json() == {"detail": "Invalid token audience"}


@pytest.mark.anyio
async def test_issuer_string_and_list() -> None:
    token = mint(claims(iss="https://idp.example"))
    assert (await send(token, issuer="https://idp.example")).status == 200
    assert (await send(token, issuer=["https://a", "https://idp.example"])).status == 200
    wrong = await send(token, issuer="https://other.example")
    assert wrong.json() == {"detail": "Invalid token issuer"}
    assert "other.example" not in wrong.body.decode()
    assert (await send(mint(), issuer="https://idp.example")).json() == {
        "detail": "Invalid token issuer"
    }


@pytest.mark.anyio
async def test_sub_must_be_a_string() -> None:
    assert (await send(mint(claims(sub=123)))).status == 401


@pytest.mark.anyio
async def test_validate_false_skips_signatures_but_not_expiry() -> None:
    mw, app = make(validate=False, verification_keys=None)
    forged = mint(key="anything-at-all-" + "x" * 40)
    assert (await call(mw, http_scope("GET", "/x", bearer(forged)))).status == 200
    assert app.state["user_id"] == "user-1"
    expired = mint(claims(exp=int(time.time()) - 600))
    assert (await call(mw, http_scope("GET", "/x", bearer(expired)))).status == 401


@pytest.mark.anyio
async def test_library_error_text_never_reaches_the_client() -> None:
    tokens = [
        mint(claims(aud=5), key=SECRET),
        raw_token('{"alg":"HS256","kid":5}', payload_json()),
        raw_token('{"alg":"HS256","crit":["bogus"]}', payload_json()),
        raw_token("[]", payload_json()),
        raw_token(HEADER, "[1,2]"),
        raw_token(HEADER, "{bad json"),
    ]
    for token in tokens:
        result = await send(token, audience="x")
        assert result.status == 401
        assert result.json()["detail"] in {"Invalid token", "Invalid token audience"}


@settings(max_examples=250, deadline=None)
@given(st.text(max_size=400))
def test_any_token_string_gives_a_4xx_never_an_exception(token: str) -> None:
    import anyio

    mw, _ = make()
    scope = http_scope("GET", "/agents")
    scope["headers"] = [(b"authorization", b"Bearer " + token.encode("utf-8", "surrogatepass"))]
    result = anyio.run(call, mw, scope)
    assert result.status in (400, 401)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.text(max_size=8),
        st.recursive(
            st.none()
            | st.booleans()
            | st.integers()
            | st.floats(allow_nan=False)
            | st.text(max_size=10),
            lambda children: (
                st.lists(children, max_size=3)
                | st.dictionaries(st.text(max_size=5), children, max_size=3)
            ),
            max_leaves=8,
        ),
        max_size=8,
    )
)
def test_any_signed_payload_is_accepted_or_rejected_cleanly(extra: dict[str, Any]) -> None:
    """Valid signatures over arbitrary claim shapes: a clean 200 or 401, never an exception."""
    import anyio

    payload = {**claims(), **extra}
    mw, _ = make(
        scopes_claim=["scopes", "scope", "realm_access.roles"],
        user_id_claim="sub",
        dependencies_claims=["tenant", "a.b"],
        session_state_claims=["prefs"],
        audience="x",
        verify_audience=False,
    )
    try:
        token = mint(payload)
    except (TypeError, ValueError):
        return
    result = anyio.run(call, mw, http_scope("GET", "/agents", bearer(token)))
    assert result.status in (200, 401)


def _outcome(decode: Any, segment: bytes) -> tuple[str, Any]:
    from jwt.exceptions import DecodeError

    try:
        return "ok", decode(segment, "payload")
    except DecodeError as exc:
        return "rejected", str(exc)


@settings(max_examples=1500, deadline=None)
@given(
    st.binary(max_size=40)
    | st.text(alphabet="ABCXYZabcxyz0189-_=+/!. \n\x00é", max_size=40).map(
        lambda text: text.encode()
    )
)
def test_segment_decoding_matches_pyjwt_exactly(segment: bytes) -> None:
    """Our faster base64url segment check must accept and reject exactly what PyJWT's does
    (non-alphabet junk, bad padding, non-canonical trailing bits)."""
    from jwt.api_jws import PyJWS

    from agentos_mw.auth.verify import decode_segment

    assert _outcome(decode_segment, segment) == _outcome(PyJWS._decode_base64url_segment, segment)


def test_a_pyjwt_that_disagrees_keeps_its_own_segment_decoder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from jwt.api_jws import PyJWS

    from agentos_mw.auth import verify

    assert verify._StrictJWT()._jws._decode_base64url_segment is verify.decode_segment

    def stricter(segment: bytes, name: str) -> bytes:
        if segment.endswith(b"="):
            raise verify.DecodeError("padding not allowed")
        return PyJWS._decode_base64url_segment(segment, name)

    monkeypatch.setattr(PyJWS, "_decode_base64url_segment", staticmethod(stricter))
    assert verify._StrictJWT()._jws._decode_base64url_segment is not verify.decode_segment


def test_segment_decoding_edge_cases_match_pyjwt() -> None:
    from jwt.api_jws import PyJWS

    from agentos_mw.auth.verify import _SEGMENT_PROBES, decode_segment

    # the start-up probes, and a few more shapes they leave out
    for segment in (*_SEGMENT_PROBES, b"AAAA", b"Q===", b"QUJD\n", b"QUJ"):
        assert _outcome(decode_segment, segment) == _outcome(
            PyJWS._decode_base64url_segment, segment
        ), segment


@pytest.mark.anyio
async def test_token_types_restrict_the_typ_header() -> None:
    """RFC 8725 §3.11: an ID token (typ JWT) must not pass where access tokens (at+jwt) are
    expected, when the deployment says so."""
    access = {"token_types": ["at+jwt"]}
    for typ in ("at+jwt", "application/at+JWT", " AT+JWT "):
        assert (await send(mint(headers={"typ": typ}), **access)).status == 200, typ
    for headers in ({"typ": "JWT"}, {"typ": "dpop+jwt"}, {"typ": 7}, {}):
        token = mint(headers=headers)
        if not headers:  # PyJWT adds typ=JWT by default: build one without it
            token = raw_token('{"alg":"HS256"}', payload_json())
        result = await send(token, **access)
        assert (result.status, result.json()) == (401, {"detail": "Invalid token"}), headers
    # not configured: any typ (or none) is accepted, as before
    assert (await send(mint(headers={"typ": "dpop+jwt"}))).status == 200
    assert (await send(raw_token('{"alg":"HS256"}', payload_json()))).status == 200


def test_token_types_configuration_errors() -> None:
    with pytest.raises(TypeError, match="token_types"):
        make(token_types="at+jwt")
    for bad in ([], [""], ["application/"], [None]):
        with pytest.raises(ValueError, match="token_types"):
            make(token_types=bad)


def test_jwks_url_without_audience_or_issuer_warns(caplog: pytest.LogCaptureFixture) -> None:
    from agentos_mw.auth import JWTMiddleware
    from tests.test_auth_common import Recorder

    with caplog.at_level("WARNING", logger="agentos_mw.auth"):
        JWTMiddleware(Recorder(), jwks_url="https://idp.example/jwks")
    assert any("without audience or issuer" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level("WARNING", logger="agentos_mw.auth"):
        JWTMiddleware(Recorder(), jwks_url="https://idp.example/jwks", audience="api")
        JWTMiddleware(Recorder(), jwks_url="https://idp.example/jwks", issuer="https://idp")
    assert not any("without audience or issuer" in r.getMessage() for r in caplog.records)
