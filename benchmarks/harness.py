"""In-process ASGI latency harness: no TestClient, no network, prebuilt messages.

Candidates are measured side by side in interleaved rounds so that machine noise hits all of
them alike; results are reported as µs/request (median and p10–p90 over rounds) and as µs added
over a baseline measured in the same run. Ratios from one run are the figures worth quoting.
"""

from __future__ import annotations

import asyncio
import gc
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

ASGIApp = Callable[..., Any]
BODY = {"type": "http.request", "body": b"", "more_body": False}


def make_scope(
    method: str = "GET",
    path: str = "/agents",
    headers: Sequence[tuple[bytes, bytes]] = (),
    client: tuple[str, int] | None = ("127.0.0.1", 50000),
) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": list(headers),
        "client": client,
        "server": ("127.0.0.1", 8000),
        "extensions": {},
    }


def make_app() -> Starlette:
    """A small AgentOS-shaped Starlette app: the baseline every candidate wraps."""

    async def list_agents(request: Request) -> Response:
        return JSONResponse([{"id": "a1"}, {"id": "a2"}])

    async def get_agent(request: Request) -> Response:
        return JSONResponse({"id": request.path_params["agent_id"]})

    async def run_agent(request: Request) -> Response:
        async def events() -> Any:
            for i in range(3):
                yield f"data: {i}\n\n".encode()

        return StreamingResponse(events(), media_type="text/event-stream")

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.close()

    return Starlette(
        routes=[
            Route("/health", health),
            Route("/agents", list_agents),
            Route("/agents/{agent_id}", get_agent),
            Route("/agents/{agent_id}/runs", run_agent, methods=["POST"]),
            WebSocketRoute("/ws", ws),
        ]
    )


async def _noop_send(message: Any) -> None:
    return None


async def _receive() -> Any:
    return BODY


async def _run_batch(app: ASGIApp, scope: Mapping[str, Any], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        await app(dict(scope), _receive, _noop_send)
    return time.perf_counter() - start


@dataclass
class Row:
    name: str
    median_us: float
    p10_us: float
    p90_us: float
    added_us: float

    def ratio_to(self, other: Row) -> float:
        return self.added_us / other.added_us if other.added_us > 0 else float("inf")


def compare(
    cases: Mapping[str, tuple[ASGIApp, Mapping[str, Any]]],
    *,
    baseline: str,
    rounds: int = 25,
    batch: int = 200,
    warmup: int = 50,
) -> dict[str, Row]:
    """Measure every case in interleaved rounds; ``added_us`` is the median minus the baseline's."""
    loop = asyncio.new_event_loop()
    try:
        for app, scope in cases.values():
            loop.run_until_complete(_run_batch(app, scope, warmup))
        samples: dict[str, list[float]] = {name: [] for name in cases}
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            order = list(cases.items())
            for round_index in range(rounds):
                # Rotate the order each round: a case measured later in a round reads slightly
                # faster (warm caches), and no case should always get that position.
                shift = round_index % len(order)
                for name, (app, scope) in order[shift:] + order[:shift]:
                    elapsed = loop.run_until_complete(_run_batch(app, scope, batch))
                    samples[name].append(elapsed / batch * 1e6)
                gc.collect()
        finally:
            if gc_was_enabled:
                gc.enable()
    finally:
        loop.close()
    base = statistics.median(samples[baseline])
    rows: dict[str, Row] = {}
    for name, values in samples.items():
        values.sort()
        median = statistics.median(values)
        rows[name] = Row(
            name=name,
            median_us=median,
            p10_us=values[max(0, len(values) // 10)],
            p90_us=values[min(len(values) - 1, (len(values) * 9) // 10)],
            added_us=median - base,
        )
    return rows


def table(rows: Mapping[str, Row], title: str = "") -> str:
    lines = []
    if title:
        lines += [f"### {title}", ""]
    lines += [
        "| case | µs/request (median) | p10–p90 | µs added over baseline |",
        "|---|---:|---:|---:|",
    ]
    for row in rows.values():
        lines.append(
            f"| {row.name} | {row.median_us:.1f} | {row.p10_us:.1f}–{row.p90_us:.1f} | {row.added_us:+.1f} |"
        )
    return "\n".join(lines)


def machine() -> str:
    import os

    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
