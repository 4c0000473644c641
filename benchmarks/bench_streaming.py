"""Time to first byte and chunk arrival through the stacks, for an SSE run endpoint.

The app emits one event every 20 ms; we record when ``http.response.start`` and each body chunk
reach the server-side ``send``. A stack that buffers would deliver all chunks at the end.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from . import apps, harness

CHUNKS = 5
INTERVAL = 0.02


def sse_app() -> Starlette:
    async def run(request: Request) -> StreamingResponse:
        async def events() -> Any:
            for i in range(CHUNKS):
                yield f"data: {i}\n\n".encode()
                await asyncio.sleep(INTERVAL)

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[Route("/agents/{agent_id}/runs", run, methods=["POST"])])


def build(kind: str) -> Any:
    from agentos_mw import secure_stack

    if kind == "bare":
        return sse_app()
    if kind == "stack":
        apps.quiet_access_log()
        return Starlette(routes=sse_app().routes, middleware=secure_stack(**apps.stack_options()))
    seed = apps.seed_stack()
    return Starlette(routes=sse_app().routes, middleware=seed.user_middleware)


async def one_run(app: Any) -> tuple[float, list[float]]:
    scope = harness.make_scope(
        "POST", "/agents/a1/runs", [(b"authorization", f"Bearer {apps.BENCH_TOKEN}".encode())]
    )
    done = asyncio.Event()
    sent_body = False
    arrivals: list[float] = []
    start_at = 0.0

    async def receive() -> dict[str, Any]:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal start_at
        now = time.perf_counter()
        if message["type"] == "http.response.start":
            start_at = now
        elif message["type"] == "http.response.body" and message.get("body"):
            arrivals.append(now)

    t0 = time.perf_counter()
    await app(scope, receive, send)
    done.set()
    return (start_at - t0) * 1000, [(a - t0) * 1000 for a in arrivals]


def run(quick: bool) -> tuple[str, list[str]]:
    rounds = 5 if quick else 20
    results: dict[str, tuple[list[float], list[list[float]]]] = {}
    loop = asyncio.new_event_loop()
    try:
        built = {kind: build(kind) for kind in ("bare", "stack", "seed")}
        for _ in range(rounds):
            for kind, app in built.items():
                ttfb, arrivals = loop.run_until_complete(one_run(app))
                results.setdefault(kind, ([], []))
                results[kind][0].append(ttfb)
                results[kind][1].append(arrivals)
    finally:
        loop.close()
    labels = {
        "bare": "bare Starlette app",
        "stack": "secure_stack() complete",
        "seed": "BaseHTTPMiddleware recipes + Agno JWT",
    }
    lines = [
        f"### Streaming: SSE run endpoint, {CHUNKS} events {INTERVAL * 1000:.0f} ms apart (median of {rounds})",
        "",
        "| stack | time to response start ms | first chunk ms | last chunk ms | chunks delivered separately |",
        "|---|---:|---:|---:|---:|",
    ]
    first_chunk: dict[str, float] = {}
    failures: list[str] = []
    for kind, (ttfbs, arrival_lists) in results.items():
        first = statistics.median(a[0] for a in arrival_lists if a)
        last = statistics.median(a[-1] for a in arrival_lists if a)
        separate = min(len(a) for a in arrival_lists)
        first_chunk[kind] = first
        lines.append(
            f"| {labels[kind]} | {statistics.median(ttfbs):.2f} | {first:.2f} | {last:.2f} | {separate}/{CHUNKS} |"
        )
        if kind == "stack" and separate < CHUNKS:
            failures.append(f"the stack merged chunks: {separate} of {CHUNKS} delivered")
    delay = first_chunk["stack"] - first_chunk["bare"]
    lines += [
        "",
        f"First chunk through the stack: {delay:+.2f} ms vs the bare app (gate: ≤ 20 ms).",
    ]
    if delay > 20:
        failures.append(f"stack delays the first chunk by {delay:.1f} ms (> 20 ms)")
    return "\n".join(lines), failures
