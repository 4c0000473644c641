from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentos_mw.rbac import AGENTOS_DEFAULT_SCOPE_MAPPINGS, RBACPolicy, granted_scopes


def allowed(policy: RBACPolicy, method: str, path: str, scopes: list[str] | None) -> bool:
    granted = None if scopes is None else granted_scopes(scopes)
    return policy.decide(method, path, granted).allowed


DEFAULT = RBACPolicy()


@pytest.mark.parametrize(
    ("method", "path", "scopes", "expected"),
    [
        ("POST", "/agents/web-agent/runs", ["agents:web-agent:run"], True),
        ("POST", "/agents/other/runs", ["agents:web-agent:run"], False),
        ("GET", "/agents/other", ["agents:web-agent:read"], False),
        ("GET", "/agents/web-agent", ["agents:web-agent:read"], True),
        ("GET", "/agents/web-agent", ["agents:web-agent:run"], False),  # action must match
        ("POST", "/agents/x/runs/r1/cancel", ["agents:x:run"], True),
        ("POST", "/agents/x/runs/r1/cancel", ["agents:y:run"], False),
        ("POST", "/agents/any/runs", ["agents:*:run"], True),
        ("POST", "/agents/any/runs", ["agents:run"], True),
        ("POST", "/agents/any/runs", ["teams:*:run"], False),
        ("DELETE", "/agents/a1", ["agents:a1:delete"], True),
        ("POST", "/teams/t1/runs", ["teams:t1:run"], True),
        ("POST", "/workflows/w1/runs", ["workflows:w2:run"], False),
        ("POST", "/agents", ["agents:a1:write"], False),  # creating is not per-resource
    ],
)
def test_per_resource_and_wildcard_scopes(
    method: str, path: str, scopes: list[str], expected: bool
) -> None:
    assert allowed(DEFAULT, method, path, scopes) is expected


def test_per_resource_works_for_any_family_with_an_id_segment() -> None:
    assert allowed(DEFAULT, "GET", "/sessions/s1", ["sessions:s1:read"])
    assert not allowed(DEFAULT, "GET", "/sessions/s2", ["sessions:s1:read"])
    assert allowed(DEFAULT, "DELETE", "/memories/m1", ["memories:m1:delete"])
    assert allowed(DEFAULT, "GET", "/schedules/sc1/runs/r9", ["schedules:sc1:read"])
    assert not allowed(DEFAULT, "GET", "/schedules/sc2/runs/r9", ["schedules:sc1:read"])
    custom = RBACPolicy({"GET /projects/{project_id}/files": ["projects:read"]})
    assert allowed(custom, "GET", "/projects/p1/files", ["projects:p1:read"])
    assert not allowed(custom, "GET", "/projects/p2/files", ["projects:p1:read"])


def test_a_scope_for_one_family_never_satisfies_another_familys_requirement() -> None:
    policy = RBACPolicy({"GET /agents/*/memories": ["memories:read"]})
    assert not allowed(policy, "GET", "/agents/a1/memories", ["agents:a1:read"])
    assert not allowed(policy, "GET", "/agents/a1/memories", ["memories:a1:read"])
    assert allowed(policy, "GET", "/agents/a1/memories", ["memories:read"])


def test_trailing_star_covers_the_subtree_like_agno() -> None:
    assert DEFAULT.required_scopes("GET", "/agents/a1/runs/r1/checkpoints/3") == ("agents:read",)
    assert allowed(DEFAULT, "GET", "/agents/a1/runs/r1", ["agents:a1:read"])
    assert not allowed(DEFAULT, "GET", "/agents/a2/runs/r1", ["agents:a1:read"])
    assert DEFAULT.required_scopes("DELETE", "/learnings/users/u1") == ("learnings:delete",)
    exact = RBACPolicy({"GET /things/{id}": ["things:read"]}, use_default_mappings=False)
    assert exact.required_scopes("GET", "/things/1/more") is None


def test_admin_scope_default_custom_and_list() -> None:
    assert allowed(DEFAULT, "DELETE", "/sessions", ["agent_os:admin"])
    custom = RBACPolicy(admin_scope="root")
    assert allowed(custom, "DELETE", "/sessions", ["root"])
    assert not allowed(custom, "DELETE", "/sessions", ["agent_os:admin"])
    many = RBACPolicy(admin_scope=["root", "ops:admin"], unmapped="deny")
    assert allowed(many, "DELETE", "/sessions", ["ops:admin"])
    assert allowed(many, "GET", "/unmapped", ["root"])
    assert not allowed(many, "GET", "/unmapped", ["agents:read"])
    decision = many.decide("GET", "/agents", granted_scopes(["root"]))
    assert decision.accessible_ids == {"*"}


def test_listing_with_only_per_resource_scopes_passes_with_the_visible_ids() -> None:
    decision = DEFAULT.decide(
        "GET", "/agents", granted_scopes(["agents:a1:read", "agents:a2:read"])
    )
    assert decision.allowed and decision.accessible_ids == {"a1", "a2"}
    # only the listing's action counts, only the listing's family
    decision = DEFAULT.decide("GET", "/agents", granted_scopes(["agents:a1:run", "teams:t1:read"]))
    assert decision.allowed and decision.accessible_ids == frozenset()
    for scopes in (["agents:read"], ["agents:*:read"], ["agent_os:admin"]):
        assert DEFAULT.decide("GET", "/agents/", granted_scopes(scopes)).accessible_ids == {"*"}
    assert DEFAULT.decide("HEAD", "/teams", granted_scopes(["teams:t9:read"])).accessible_ids == {
        "t9"
    }
    # not a listing: POST /agents, GET /sessions (its endpoint does not filter by id)
    assert not allowed(DEFAULT, "POST", "/agents", ["agents:a1:write"])
    assert not allowed(DEFAULT, "GET", "/sessions", ["sessions:s1:read"])
    assert (
        DEFAULT.decide("GET", "/agents/a1", granted_scopes(["agents:read"])).accessible_ids is None
    )


def test_listing_resources_is_configurable() -> None:
    policy = RBACPolicy(listing_resources=["agents", "sessions"])
    decision = policy.decide("GET", "/sessions", granted_scopes(["sessions:s1:read"]))
    assert decision.allowed and decision.accessible_ids == {"s1"}
    none = RBACPolicy(listing_resources=[])
    assert not allowed(none, "GET", "/agents", ["agents:a1:read"])


def test_head_requires_what_get_requires_unless_mapped_itself() -> None:
    assert DEFAULT.required_scopes("HEAD", "/sessions") == ("sessions:read",)
    assert not allowed(DEFAULT, "HEAD", "/sessions", [])
    policy = RBACPolicy({"HEAD /sessions": []})
    assert allowed(policy, "HEAD", "/sessions", [])
    assert not allowed(policy, "GET", "/sessions", [])


@pytest.mark.parametrize("path", ["/agents/a1/runs/", "/agents/a1/runs"])
def test_trailing_slash_does_not_change_the_match(path: str) -> None:
    assert DEFAULT.required_scopes("POST", path) == ("agents:run",)
    assert not allowed(DEFAULT, "POST", path, ["agents:a2:run"])


def test_user_mappings_override_same_key_and_beat_less_specific_defaults() -> None:
    policy = RBACPolicy(
        {
            "GET /agents/*/secrets": ["secrets:read"],
            "GET /sessions": ["custom:sessions:list"],
            "GET /agents/{agent_id}": ["agents:inspect"],
        }
    )
    assert policy.required_scopes("GET", "/agents/a1/secrets") == ("secrets:read",)
    assert not allowed(policy, "GET", "/agents/a1/secrets", ["agents:read"])
    assert policy.required_scopes("GET", "/sessions") == ("custom:sessions:list",)
    assert policy.required_scopes("GET", "/agents/a1") == ("agents:inspect",)
    # the default still covers the rest of the subtree
    assert policy.required_scopes("GET", "/agents/a1/runs") == ("agents:read",)


def test_empty_list_means_no_scope_needed_even_without_identity() -> None:
    policy = RBACPolicy({"GET /agents": []}, unmapped="deny")
    decision = policy.decide("GET", "/agents", None)
    assert decision.allowed and decision.required_scopes == ()


def test_all_listed_scopes_are_required() -> None:
    policy = RBACPolicy({"POST /reports": ["reports:write", "billing:read"]})
    assert not allowed(policy, "POST", "/reports", ["reports:write"])
    assert allowed(policy, "POST", "/reports", ["reports:write", "billing:read"])


def test_custom_three_part_scope_from_agnos_docs_is_satisfiable() -> None:
    policy = RBACPolicy({"GET /agents": ["custom:agents:list"]})
    assert allowed(policy, "GET", "/agents", ["custom:agents:list"])
    assert not allowed(policy, "GET", "/agents", ["agents:read"])


def test_legacy_system_scopes_are_config_scopes_both_ways() -> None:
    assert allowed(DEFAULT, "GET", "/config", ["system:read"])
    assert allowed(DEFAULT, "POST", "/databases/db1/migrate", ["system:write"])
    legacy_map = RBACPolicy({"GET /status": ["system:read"]})
    assert allowed(legacy_map, "GET", "/status", ["config:read"])


def test_unmapped_allow_deny_and_default_scopes() -> None:
    assert allowed(RBACPolicy(), "GET", "/custom", [])
    assert allowed(RBACPolicy(), "GET", "/custom", None)
    deny = RBACPolicy(unmapped="deny")
    decision = deny.decide("GET", "/custom", granted_scopes(["agents:read"]))
    assert not decision.allowed and decision.status == 403
    assert deny.decide("GET", "/custom", None).status == 401
    needs = RBACPolicy(default_scopes=["api:use"], unmapped="deny")
    assert allowed(needs, "GET", "/custom", ["api:use"])
    assert not allowed(needs, "GET", "/custom", ["agents:read"])
    assert needs.required_scopes("GET", "/custom") == ("api:use",)


def test_no_identity_is_401_only_where_scopes_are_required() -> None:
    decision = DEFAULT.decide("GET", "/sessions", None)
    assert decision.status == 401 and decision.detail == "Not authenticated"
    assert decision.headers == ((b"www-authenticate", b'Bearer realm="api"'),)


def test_403_names_the_required_scopes() -> None:
    decision = RBACPolicy({"POST /x": ["a:write", "b:read"]}).decide("POST", "/x", frozenset())
    assert decision.status == 403
    assert decision.detail == "Insufficient permissions. Required scope(s): a:write, b:read"
    assert decision.headers == (
        (b"www-authenticate", b'Bearer error="insufficient_scope", scope="a:write b:read"'),
    )


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"unmapped": "open"}, ValueError),
        ({"scope_mappings": {"GET /x": "agents:read"}}, TypeError),
        ({"scope_mappings": {"GET /x": ["has space"]}}, ValueError),
        ({"scope_mappings": {"GET x": ["a:b"]}}, ValueError),
        ({"scope_mappings": {"GET /a*b": ["a:b"]}}, ValueError),
        ({"scope_mappings": [("GET /x", ["a:b"])]}, TypeError),
        ({"admin_scope": []}, ValueError),
        ({"admin_scope": 'bad"scope'}, ValueError),
        ({"default_scopes": "api:use"}, TypeError),
        ({"listing_resources": "agents"}, TypeError),
        ({"realm": 'a"b'}, ValueError),
        ({"realm": "a\nb"}, ValueError),
        ({"realm": "日本"}, ValueError),
    ],
)
def test_bad_configuration_fails_at_startup(
    kwargs: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        RBACPolicy(**kwargs)  # type: ignore[arg-type]


def test_use_default_mappings_false_keeps_only_the_users_map() -> None:
    policy = RBACPolicy({"GET /x": ["x:read"]}, use_default_mappings=False)
    assert policy.required_scopes("GET", "/sessions") is None
    assert set(RBACPolicy().mappings) >= set(AGENTOS_DEFAULT_SCOPE_MAPPINGS)


segment = st.text(
    st.characters(blacklist_characters="/", blacklist_categories=("Cs",)), min_size=1, max_size=12
)


@given(agent=segment, other=segment, action=st.sampled_from(["read", "run"]))
@settings(max_examples=250)
def test_a_per_resource_scope_opens_exactly_its_own_resource(
    agent: str, other: str, action: str
) -> None:
    path = f"/agents/{agent}" + ("/runs" if action == "run" else "")
    method = "POST" if action == "run" else "GET"
    assert allowed(DEFAULT, method, path, [f"agents:{agent}:{action}"])
    if other not in (agent, "*"):  # agents:*:<action> is the wildcard
        assert not allowed(DEFAULT, method, path, [f"agents:{other}:{action}"])


@given(
    method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "X"]),
    path=st.text(max_size=80).map(lambda p: "/" + p),
    scopes=st.one_of(st.none(), st.lists(st.text(max_size=30), max_size=6)),
)
@settings(max_examples=300)
def test_any_request_gets_a_decision_and_admin_always_passes(
    method: str, path: str, scopes: list[str] | None
) -> None:
    policy = RBACPolicy(unmapped="deny")
    decision = policy.decide(method, path, None if scopes is None else granted_scopes(scopes))
    assert decision.allowed or decision.status in (401, 403)
    assert policy.decide(method, path, granted_scopes(["agent_os:admin"])).allowed
