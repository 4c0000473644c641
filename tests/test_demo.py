"""The demo app answers the README's curl commands as the README says (in-process)."""

from __future__ import annotations

import pytest

from agentos_mw import demo
from agentos_mw.cli import demo_instructions
from tests.driver import call, http_scope

SECRET = demo.new_secret()


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.setattr(demo, "EVENT_DELAY", 0)
    return demo.create_demo_app(SECRET)


def bearer(user: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {demo.demo_token(SECRET, user)}")]


@pytest.mark.anyio
async def test_public_and_missing_token(app: object) -> None:
    assert (await call(app, http_scope("GET", "/health"))).status == 200  # type: ignore[arg-type]
    denied = await call(app, http_scope("GET", "/agents"))  # type: ignore[arg-type]
    assert denied.status == 401
    assert (
        denied.header(
            "www-authenticate",
        )
        is not None
    )


@pytest.mark.anyio
async def test_reader_sees_all_runner_sees_a1(app: object) -> None:
    reader = await call(app, http_scope("GET", "/agents", bearer("reader")))  # type: ignore[arg-type]
    assert reader.status == 200
    assert [a["id"] for a in reader.json()] == ["a1", "a2", "a3"]
    runner = await call(app, http_scope("GET", "/agents", bearer("runner")))  # type: ignore[arg-type]
    assert runner.status == 200
    assert [a["id"] for a in runner.json()] == ["a1"]


@pytest.mark.anyio
async def test_run_scopes_and_streaming(app: object) -> None:
    no_run = await call(app, http_scope("POST", "/agents/a1/runs", bearer("reader")))  # type: ignore[arg-type]
    assert no_run.status == 403
    other = await call(app, http_scope("POST", "/agents/a2/runs", bearer("runner")))  # type: ignore[arg-type]
    assert other.status == 403
    run = await call(app, http_scope("POST", "/agents/a1/runs", bearer("runner")))  # type: ignore[arg-type]
    assert run.status == 200
    assert run.header(
        "content-type",
    ).startswith("text/event-stream")  # type: ignore[union-attr]
    chunks = [m for m in run.messages if m["type"] == "http.response.body" and m.get("body")]
    assert len(chunks) == 4  # three events and [DONE], each its own message
    assert b'"user": "runner"' in run.body


@pytest.mark.anyio
async def test_fourth_run_in_a_minute_is_rate_limited(app: object) -> None:
    statuses = []
    for _ in range(4):
        result = await call(app, http_scope("POST", "/agents/a1/runs", bearer("admin")))  # type: ignore[arg-type]
        statuses.append(result.status)
    assert statuses == [200, 200, 200, 429]
    assert int(result.header("retry-after") or 0) >= 1


def test_instructions_mention_every_user() -> None:
    text = demo_instructions("http://127.0.0.1:8000", {"admin": "A", "reader": "R", "runner": "U"})
    assert "ADMIN=A" in text and "READER=R" in text and "RUNNER=U" in text
    assert "429" in text and "403" in text and "401" in text
