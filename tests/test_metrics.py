"""MetricsMiddleware: bounded labels, streaming-aware timings, disconnects, exposition."""

from __future__ import annotations

import random
import string
from typing import Any

import anyio
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route

from agentos_mw.observability import MetricsMiddleware, metrics_app
from tests.driver import call, http_scope

pytestmark = pytest.mark.anyio


async def get_agent(request: Request) -> Response:
    return JSONResponse({"id": request.path_params["agent_id"]})


async def boom(request: Request) -> Response:
    raise RuntimeError("boom")


def app() -> Starlette:
    return Starlette(
        routes=[
            Route("/agents/{agent_id}", get_agent, methods=["GET", "POST"]),
            Route("/boom", boom),
            Mount("/t/{tenant}", routes=[Route("/agents/{agent_id}", get_agent)]),
        ]
    )


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def label_sets(registry: CollectorRegistry, name: str) -> set[tuple[tuple[str, str], ...]]:
    return {
        tuple(sorted(sample.labels.items()))
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == name
    }


async def test_counts_by_method_route_template_and_status_class() -> None:
    registry = CollectorRegistry()
    mw = MetricsMiddleware(app(), registry=registry)
    for agent in ("a1", "a2", "a3"):
        await call(mw, http_scope(path=f"/agents/{agent}"))
    await call(mw, http_scope(path="/t/acme/agents/a1"))
    total = "http_requests_total"
    assert value(registry, total, method="GET", route="/agents/{agent_id}", status="2xx") == 3
    assert (
        value(registry, total, method="GET", route="/t/{tenant}/agents/{agent_id}", status="2xx")
        == 1
    )
    assert (
        value(
            registry,
            "http_request_duration_seconds_count",
            method="GET",
            route="/agents/{agent_id}",
            status="2xx",
        )
        == 3
    )
    assert (
        value(
            registry,
            "http_time_to_first_byte_seconds_count",
            method="GET",
            route="/agents/{agent_id}",
            status="2xx",
        )
        == 3
    )
    assert value(registry, "http_requests_in_progress") == 0


async def test_labels_stay_bounded_under_10000_random_paths_and_methods() -> None:
    registry = CollectorRegistry()
    mw = MetricsMiddleware(app(), registry=registry)
    rng = random.Random(5)
    alphabet = string.ascii_letters + string.digits + "/%.-_~"
    methods = ["GET", "POST", "BREW", "PROPFIND", "get", "X" * 50]
    for i in range(10_000):
        path = "/" + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        if i % 3 == 0:
            path = f"/agents/{path.strip('/').replace('/', '') or 'x'}"
        scope = http_scope(method=rng.choice(methods), path=path)
        # Not the driver: a bare receive/send keeps 10,000 requests fast.
        await mw(scope, _receive, _send)
    labels = label_sets(registry, "http_requests_total")
    routes = {dict(ls)["route"] for ls in labels}
    assert routes <= {"/agents/{agent_id}", "<unmatched>", "/boom", "/t/{tenant}/agents/{agent_id}"}
    assert {dict(ls)["method"] for ls in labels} <= {"GET", "POST", "other"}
    assert len(labels) <= 20
    total = sum(registry.get_sample_value("http_requests_total", dict(ls)) or 0 for ls in labels)
    assert total == 10_000


async def _receive() -> Any:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Any) -> None:
    return None


async def test_exception_counts_as_5xx_and_is_reraised() -> None:
    registry = CollectorRegistry()
    mw = MetricsMiddleware(app(), registry=registry)
    with pytest.raises(RuntimeError):
        await call(mw, http_scope(path="/boom"))
    assert value(registry, "http_requests_total", method="GET", route="/boom", status="5xx") == 1
    assert value(registry, "http_requests_in_progress") == 0


async def test_bare_asgi_app_uses_configured_routes_else_unmatched() -> None:
    async def bare(scope: Any, receive: Any, send: Any) -> None:
        await PlainTextResponse("ok")(scope, receive, send)

    registry = CollectorRegistry()
    mw = MetricsMiddleware(bare, registry=registry, routes=["/items/{id}", "GET /files/**"])
    for path in ("/items/1", "/items/2", "/files/a/b", "/random"):
        await call(mw, http_scope(path=path))
    routes = {dict(ls)["route"] for ls in label_sets(registry, "http_requests_total")}
    assert routes == {"/items/{id}", "/files/**", "<unmatched>"}


async def test_streaming_duration_is_to_the_last_chunk_and_ttfb_to_the_first() -> None:
    gate = anyio.Event()

    async def stream() -> Any:
        yield b"first"
        await gate.wait()
        yield b"last"

    async def run(request: Request) -> Response:
        return StreamingResponse(stream(), media_type="text/event-stream")

    registry = CollectorRegistry()
    mw = MetricsMiddleware(Starlette(routes=[Route("/run", run)]), registry=registry)
    seen: list[bytes] = []

    async def send(message: Any) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            seen.append(message["body"])
            if message["body"] == b"first":
                # The client has the first chunk while the stream is still open.
                assert value(registry, "http_requests_in_progress") == 1
                await anyio.sleep(0.05)
                gate.set()

    received = False

    async def receive() -> Any:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": b""}
        await anyio.sleep(10)

    with anyio.fail_after(5):
        await mw(http_scope(path="/run"), receive, send)
    labels = {"method": "GET", "route": "/run", "status": "2xx"}
    duration = value(registry, "http_request_duration_seconds_sum", **labels)
    ttfb = value(registry, "http_time_to_first_byte_seconds_sum", **labels)
    assert seen == [b"first", b"last"]
    assert duration >= 0.05 > ttfb  # the sleep happened between first and last chunk


async def test_client_disconnect_gets_the_499_label() -> None:
    async def stream() -> Any:
        yield b"a"
        await anyio.sleep(10)

    async def run(request: Request) -> Response:
        return StreamingResponse(stream())

    registry = CollectorRegistry()
    mw = MetricsMiddleware(Starlette(routes=[Route("/run", run)]), registry=registry)
    calls = 0

    async def receive() -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            return {"type": "http.request", "body": b""}
        return {"type": "http.disconnect"}

    with anyio.fail_after(5):
        await mw(http_scope(path="/run"), receive, _send)
    assert value(registry, "http_requests_total", method="GET", route="/run", status="499") == 1


async def test_metrics_path_serves_the_registry_and_is_not_counted() -> None:
    registry = CollectorRegistry()
    mw = MetricsMiddleware(app(), registry=registry, path="/metrics")
    await call(mw, http_scope(path="/agents/a1"))
    result = await call(mw, http_scope(path="/metrics"))
    text = result.body.decode()
    assert result.status == 200 and "text/plain" in (result.header("content-type") or "")
    assert 'http_requests_total{method="GET",route="/agents/{agent_id}",status="2xx"} 1.0' in text
    assert "/metrics" not in {
        dict(ls)["route"] for ls in label_sets(registry, "http_requests_total")
    }


async def test_metrics_app_standalone() -> None:
    registry = CollectorRegistry()
    MetricsMiddleware(app(), registry=registry, prefix="svc")
    result = await call(metrics_app(registry), http_scope(path="/"))
    assert "svc_requests_in_progress" in result.body.decode()


async def test_same_registry_twice_reuses_collectors() -> None:
    registry = CollectorRegistry()
    first = MetricsMiddleware(app(), registry=registry)
    second = MetricsMiddleware(app(), registry=registry)  # e.g. Starlette rebuilding its stack
    await call(first, http_scope(path="/agents/1"))
    await call(second, http_scope(path="/agents/1"))
    assert (
        value(
            registry, "http_requests_total", method="GET", route="/agents/{agent_id}", status="2xx"
        )
        == 2
    )


async def test_excluded_paths_and_websockets_pass_through() -> None:
    registry = CollectorRegistry()
    mw = MetricsMiddleware(app(), registry=registry, exclude_paths=["/agents/*"])
    await call(mw, http_scope(path="/agents/1"))
    assert label_sets(registry, "http_requests_total") == set()


def test_bad_configuration_is_rejected() -> None:
    with pytest.raises(ValueError):
        MetricsMiddleware(app(), registry=CollectorRegistry(), buckets=[1.0, 0.5])
    with pytest.raises(ValueError):
        MetricsMiddleware(app(), registry=CollectorRegistry(), prefix="bad-prefix")
    with pytest.raises(ValueError):
        MetricsMiddleware(app(), registry=CollectorRegistry(), path="metrics")


def test_package_imports_without_prometheus_client() -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['prometheus_client'] = None\n"
        "import agentos_mw.observability as o\n"
        "try:\n    o.MetricsMiddleware(lambda *a: None)\n"
        "except ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'agentos-mw[prometheus]'" in out.stdout


async def test_fastapi_routers_and_mounts_give_templates() -> None:
    from fastapi import APIRouter, FastAPI

    api = FastAPI()
    router = APIRouter(prefix="/v1")

    @router.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    api.include_router(router)
    api.mount("/sub/{tenant}", Starlette(routes=[Route("/x/{agent_id}", get_agent)]))
    api.mount("/static", PlainTextResponse("file"))  # a plain ASGI app as the final route

    registry = CollectorRegistry()
    mw = MetricsMiddleware(api, registry=registry)
    paths = ["/v1/items/1", "/v1/items/2", "/sub/acme/x/1", "/sub/globex/x/2", "/static/a/b.css"]
    for path in [*paths, "/docs", "/openapi.json"]:  # FastAPI's own plain Starlette routes
        await call(mw, http_scope(path=path))
    routes = {dict(ls)["route"] for ls in label_sets(registry, "http_requests_total")}
    assert routes == {
        "/v1/items/{item_id}",
        "/sub/{tenant}/x/{agent_id}",
        "/static/{path}",
        "/docs",
        "/openapi.json",
    }


async def test_histograms_expose_what_prometheus_client_would(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Single-process series are plain numbers exposed at scrape time: bucket placement (a value
    equal to a bound counts in that bucket), cumulative counts, sums and sample names must be
    those of prometheus-client's own Histogram fed the same observations."""
    from prometheus_client import Histogram

    from agentos_mw.observability import metrics

    bounds = [0.1, 0.5, 1.0]
    observed = [0.05, 0.1, 0.3, 0.5, 1.0, 2.0]
    registry = CollectorRegistry()
    mw = MetricsMiddleware(app(), registry=registry, buckets=bounds)
    reference_registry = CollectorRegistry()
    reference = Histogram("ref", "reference", buckets=bounds, registry=reference_registry)
    for elapsed in observed:
        # the start reads 0; every later reading (first byte, last chunk) reads ``elapsed``
        readings = iter([0.0])
        monkeypatch.setattr(metrics, "_perf", lambda r=readings, e=elapsed: next(r, e))
        await call(mw, http_scope(path="/agents/a1"))
        reference.observe(elapsed)

    labels = {"method": "GET", "route": "/agents/{agent_id}", "status": "2xx"}

    def samples(reg: CollectorRegistry, name: str, drop: set[str]) -> list[tuple[str, Any, float]]:
        return [
            (
                s.name.replace(name, "X"),
                {k: v for k, v in s.labels.items() if k not in drop},
                s.value,
            )
            for metric in reg.collect()
            for s in metric.samples
            if s.name.startswith(name) and not s.name.endswith("_created")
        ]

    expected = samples(reference_registry, "ref", set())
    for name in ("http_request_duration_seconds", "http_time_to_first_byte_seconds"):
        got = samples(registry, name, set(labels))
        assert [(n, lab) for n, lab, _ in got] == [(n, lab) for n, lab, _ in expected]
        assert [v for _, _, v in got] == pytest.approx([v for _, _, v in expected])
        assert registry.get_sample_value(f"{name}_created", labels) is not None
    assert value(registry, "http_requests_total", **labels) == len(observed)
