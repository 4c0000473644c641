"""Claim paths, scope shapes and JWK Set parsing: properties over arbitrary JSON."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentos_mw.auth.claims import claim_getter, scopes_from
from agentos_mw.auth.keys import parse_jwks

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


def test_claim_getter_prefers_a_literal_dotted_name() -> None:
    get = claim_getter("https://example.com/roles")
    assert get({"https://example.com/roles": ["a"]}) == ["a"]
    nested = claim_getter("realm_access.roles")
    assert nested({"realm_access": {"roles": ["x"]}}) == ["x"]
    assert nested({"realm_access": ["roles"]}) is None
    assert nested({}) is None
    for bad in ("", ".a", "a.", "a..b"):
        with pytest.raises(ValueError):
            claim_getter(bad)


def test_scopes_from_accepts_lists_and_space_separated_strings() -> None:
    assert scopes_from("openid  profile\tagents:read") == ["openid", "profile", "agents:read"]
    assert scopes_from(["a", 1, None, "", "b"]) == ["a", "b"]
    assert scopes_from({"a": 1}) == [] and scopes_from(None) == [] and scopes_from(5) == []


@settings(max_examples=300, deadline=None)
@given(JSON, st.sampled_from(["scope", "a.b", "realm_access.roles", "x.y.z"]))
def test_claim_reading_never_raises_and_scopes_are_clean_strings(value: Any, path: str) -> None:
    claims = {"scope": value, "a": {"b": value}, "realm_access": value, "x": {"y": value}}
    got = claim_getter(path)(claims)
    scopes = scopes_from(got)
    assert all(isinstance(s, str) and s for s in scopes)
    if isinstance(got, str):
        assert all(not any(c.isspace() for c in s) for s in scopes)


@settings(max_examples=300, deadline=None)
@given(JSON | st.fixed_dictionaries({"keys": st.lists(JSON, max_size=4)}))
def test_jwk_set_parsing_only_raises_value_error(data: Any) -> None:
    try:
        keys = parse_jwks(data, None, "test")
    except ValueError:
        return
    assert isinstance(keys, list)
