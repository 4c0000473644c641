from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentos_mw.paths import PathSet, RouteTable, route_path


def test_route_path_removes_root_path_on_segment_boundary() -> None:
    assert route_path({"path": "/api/agents", "root_path": "/api"}) == "/agents"
    assert route_path({"path": "/api", "root_path": "/api"}) == "/"
    assert route_path({"path": "/apix/agents", "root_path": "/api"}) == "/apix/agents"
    assert route_path({"path": "/agents", "root_path": ""}) == "/agents"
    assert route_path({}) == "/"


def test_exact_single_double_and_param() -> None:
    table = RouteTable(
        {
            "GET /agents": "list",
            "GET /agents/*": "one",
            "POST /agents/{agent_id}/runs": "run",
            "/docs/**": "docs",
        }
    )
    assert table.match("GET", "/agents").value == "list"  # type: ignore[union-attr]
    assert table.match("GET", "/agents/").value == "list"  # type: ignore[union-attr]
    one = table.match("GET", "/agents/a1")
    assert one is not None and one.value == "one" and one.wildcards == ("a1",)
    run = table.match("POST", "/agents/a1/runs")
    assert run is not None and run.params == {"agent_id": "a1"}
    assert table.match("GET", "/agents/a1/runs") is None
    assert table.match("PUT", "/docs") is not None
    assert table.match("GET", "/docs/a/b/c") is not None
    assert (
        table.match("GET", "/agents//") is None or table.match("GET", "/agents//").value == "list"
    )  # type: ignore[union-attr]


def test_star_does_not_match_empty_segment_or_many() -> None:
    table = RouteTable({"/a/*/c": 1})
    assert table.match("GET", "/a//c") is None
    assert table.match("GET", "/a/b/x/c") is None
    assert table.match("GET", "/a/b/c") is not None


def test_most_specific_wins_regardless_of_order() -> None:
    for order in (1, -1):
        items = [
            ("GET /agents/*", "read"),
            ("GET /agents/*/secrets", "secret"),
            ("GET /**", "any"),
        ][::order]
        table = RouteTable(items)
        assert table.match("GET", "/agents/a1/secrets").value == "secret"  # type: ignore[union-attr]
        assert table.match("GET", "/agents/a1").value == "read"  # type: ignore[union-attr]
        assert table.match("GET", "/other").value == "any"  # type: ignore[union-attr]
    table = RouteTable([("/agents/a1", "literal"), ("GET /agents/*", "method")])
    assert table.match("GET", "/agents/a1").value == "literal"  # type: ignore[union-attr]
    table = RouteTable([("GET /agents/*", "get"), ("/agents/*", "any")])
    assert table.match("GET", "/agents/a1").value == "get"  # type: ignore[union-attr]
    assert table.match("DELETE", "/agents/a1").value == "any"  # type: ignore[union-attr]


def test_same_shape_later_wins_and_head_uses_get() -> None:
    table = RouteTable([("GET /agents/*", "default"), ("GET /agents/{id}", "custom")])
    assert table.match("GET", "/agents/x").value == "custom"  # type: ignore[union-attr]
    assert table.match("HEAD", "/agents/x").value == "custom"  # type: ignore[union-attr]
    table.add("HEAD /agents/*", "head")
    assert table.match("HEAD", "/agents/x").value == "head"  # type: ignore[union-attr]
    assert len(table) == 2


@pytest.mark.parametrize(
    "bad", ["agents", "GET agents", "G1T /x", "/a*b", "/{x", "/a//b", "/a/{1}"]
)
def test_invalid_patterns_rejected_at_startup(bad: str) -> None:
    with pytest.raises(ValueError):
        RouteTable({bad: 1})


def test_path_set() -> None:
    excluded = PathSet(["/", "/health", "/docs/**"])
    assert "/health" in excluded and "/health/" in excluded and "/" in excluded
    assert "/docs/oauth2-redirect" in excluded
    assert "/healthz" not in excluded and "/agents" not in excluded
    with pytest.raises(TypeError):
        PathSet("/health")


segment = st.text(
    alphabet=st.characters(blacklist_characters="/", blacklist_categories=("Cs", "Zs", "Cc")),
    max_size=8,
)


@given(st.lists(segment, max_size=8), st.sampled_from(["GET", "HEAD", "POST", "X"]))
def test_match_never_raises_and_literal_round_trips(segments: list[str], method: str) -> None:
    path = "/" + "/".join(segments)
    table = RouteTable({"/agents/*": 1, "/**": 2, "GET /a/{x}/b": 3})
    found = table.match(method, path)
    assert found is not None  # "/**" catches everything
    if all(segments) and segments and "*" not in path and "{" not in path and "}" not in path:
        exact = RouteTable({path: "exact", "/**": "any"})
        assert exact.match(method, path).value == "exact"  # type: ignore[union-attr]
