from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentos_mw.rbac import ParsedScope, granted_scopes, parse_scope, scopes_from_claim
from agentos_mw.rbac.grammar import check_scope_token, normalize_scope


def test_parse_admin_global_per_resource_wildcard_and_opaque() -> None:
    assert parse_scope("agent_os:admin").kind == "admin"
    assert parse_scope("root", ["root"]).kind == "admin"
    assert parse_scope("agent_os:admin", ["root"]) == ParsedScope(
        "agent_os:admin", "global", "agent_os", None, "admin"
    )
    assert parse_scope("agents:read") == ParsedScope(
        "agents:read", "global", "agents", None, "read"
    )
    assert parse_scope("agents:web-agent:run") == ParsedScope(
        "agents:web-agent:run", "resource", "agents", "web-agent", "run"
    )
    assert parse_scope("agents:*:run").resource_id == "*"
    assert parse_scope("system:read").resource == "config"
    for opaque in ("admin", "a:b:c:d", "agents::read", ":read", "agents:", ""):
        assert parse_scope(opaque).kind == "opaque"


def test_claim_as_list_or_space_separated_string() -> None:
    assert scopes_from_claim(["agents:read", "teams:read"]) == ("agents:read", "teams:read")
    assert scopes_from_claim("agents:read  teams:read\tx") == ("agents:read", "teams:read", "x")
    assert scopes_from_claim(["agents:read", 3, None, {"a": 1}, ""]) == ("agents:read",)


@pytest.mark.parametrize(
    "value", [None, 1, 1.5, True, {"agents:read": True}, b"agents:read", object()]
)
def test_wrong_claim_type_gives_no_scopes(value: object) -> None:
    assert scopes_from_claim(value) == ()
    assert granted_scopes(value) == frozenset()


def test_granted_adds_current_name_for_legacy_scopes_only() -> None:
    granted = granted_scopes(["system:read", "agents:read"])
    assert granted == {"system:read", "config:read", "agents:read"}
    assert normalize_scope("system:a1:write") == "config:a1:write"
    assert normalize_scope("systems:read") == "systems:read"
    assert normalize_scope("mysystem:read") == "mysystem:read"


def test_granted_is_exact_and_case_sensitive() -> None:
    granted = granted_scopes("Agents:Read agents:read:extra")
    assert "agents:read" not in granted
    # one list item with spaces is one (opaque) scope: it grants neither half
    assert "agent_os:admin" not in granted_scopes(["agents:read agent_os:admin"])


def test_granted_cache_returns_equal_sets_for_equal_lists() -> None:
    first = granted_scopes(["a:b", "c:d"])
    assert granted_scopes(["a:b", "c:d"]) is first
    assert granted_scopes(["a:b", ["unhashable"]]) == {"a:b"}


@given(
    st.one_of(
        st.text(max_size=200),
        st.lists(
            st.one_of(st.text(max_size=40), st.integers(), st.none(), st.lists(st.text())),
            max_size=20,
        ),
        st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
        st.integers(),
        st.none(),
        st.binary(max_size=20),
    )
)
@settings(max_examples=300)
def test_any_claim_value_gives_a_set_of_nonempty_strings(value: object) -> None:
    granted = granted_scopes(value)
    assert isinstance(granted, frozenset)
    assert all(isinstance(s, str) and s for s in granted)
    assert not any(" " in s for s in granted if isinstance(value, str))


@given(st.text(max_size=60))
@settings(max_examples=300)
def test_parse_scope_never_raises_and_roundtrips_parts(text: str) -> None:
    parsed = parse_scope(text)
    assert parsed.raw == text
    if parsed.kind == "global":
        assert normalize_scope(text) == f"{parsed.resource}:{parsed.action}"
    elif parsed.kind == "resource":
        assert normalize_scope(text) == f"{parsed.resource}:{parsed.resource_id}:{parsed.action}"


@pytest.mark.parametrize("bad", ["", "agents read", 'a"b', "a\\b", "agents:réad", "a\nb"])
def test_configured_scopes_must_be_rfc6750_tokens(bad: str) -> None:
    with pytest.raises(ValueError):
        check_scope_token(bad, "scope")
    with pytest.raises(TypeError):
        check_scope_token(["agents:read"], "scope")
    assert check_scope_token("agents:*:run", "scope") == "agents:*:run"
