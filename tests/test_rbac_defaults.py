from __future__ import annotations

import pytest

from agentos_mw.rbac import (
    AGENTOS_COMPANY_SCOPE_MAPPINGS,
    AGENTOS_DEFAULT_SCOPE_MAPPINGS,
    AGENTOS_GAP_SCOPE_MAPPINGS,
    RBACPolicy,
)

agno_scopes = pytest.importorskip("agno.os.scopes")


def as_lists(mapping: object) -> dict[str, list[str]]:
    return {key: list(value) for key, value in dict(mapping).items()}  # type: ignore[call-overload]


def test_default_map_matches_agnos_entry_for_entry() -> None:
    assert as_lists(AGENTOS_DEFAULT_SCOPE_MAPPINGS) == agno_scopes.get_default_scope_mappings()


def test_company_map_matches_agnos_company_entries() -> None:
    agno_company = agno_scopes.get_default_scope_mappings(company=True)
    assert {
        **as_lists(AGENTOS_DEFAULT_SCOPE_MAPPINGS),
        **as_lists(AGENTOS_COMPANY_SCOPE_MAPPINGS),
    } == agno_company


def test_gap_entries_are_not_in_agnos_map_and_cover_no_agno_route() -> None:
    agno_map = agno_scopes.get_default_scope_mappings(company=True)
    for key in AGENTOS_GAP_SCOPE_MAPPINGS:
        method, path = key.split(" ", 1)
        assert key not in agno_map
        concrete = path.replace("*", "x1")
        assert agno_scopes.get_required_scopes_for_route(agno_map, method, concrete) == []


def test_maps_are_read_only() -> None:
    with pytest.raises(TypeError):
        AGENTOS_DEFAULT_SCOPE_MAPPINGS["GET /agents"] = ()  # type: ignore[index]


def concrete_paths(pattern: str) -> list[str]:
    """Concrete request paths for a mapping key's path, including one deeper path for a
    trailing ``*`` (Agno's fnmatch covers those too)."""
    path = pattern.replace("*", "id-1")
    return [path, path + "/deeper/x"] if pattern.endswith("*") else [path]


def test_every_default_entry_requires_what_agno_requires() -> None:
    """Our compiled map (most specific wins) against Agno's (first match wins), on a concrete
    path for every entry of both maps: wherever Agno requires scopes, we require the same."""
    agno_map = agno_scopes.get_default_scope_mappings(company=True)
    ours = RBACPolicy(AGENTOS_COMPANY_SCOPE_MAPPINGS)
    checked = 0
    for key in agno_map:
        method, pattern = key.split(" ", 1)
        for path in concrete_paths(pattern):
            expected = agno_scopes.get_required_scopes_for_route(agno_map, method, path)
            got = ours.required_scopes(method, path)
            if expected:
                assert got == tuple(expected), (method, path)
                checked += 1
    assert checked > 150
