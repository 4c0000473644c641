"""Soak run: uvicorn serving the complete stack with a Redis rate-limit store, under a mix of
valid, expired, forged and missing tokens, a rate-limited route, SSE streams and websockets.

``python -m benchmarks.soak --duration 60`` (default 60 s; loopback only). The server runs in a
subprocess; the load comes from this process (asyncio, httpx, websockets). Redis is the shared
one at ``AGENTOS_MW_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``), under a unique key
prefix deleted afterwards.

Exits non-zero when: any 5xx, any dropped connection, server RSS growth >= 5 % between the end of
warm-up and the end of the run, any forged/expired/missing token answered 2xx (or anything but
401), the rate-limited route not letting through exactly its limit, an SSE stream or websocket
session cut short, or the server not shutting down cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

SECRET = "agentos-mw-soak-secret-" + "s" * 40
FORGER = "agentos-mw-soak-forger-" + "f" * 40
LIMITED = 50  # requests per day on /limited for one user: exact over any soak run
REDIS_URL = os.environ.get("AGENTOS_MW_REDIS_URL", "redis://127.0.0.1:6379/0")
CHUNKS = 5
ROOT = Path(__file__).resolve().parent.parent


# -- the server (subprocess) --------------------------------------------------------------------


def make_server_app(prefix: str) -> Any:
    import logging

    from prometheus_client import CollectorRegistry
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket

    from agentos_mw import RedisStore, secure_stack

    access = logging.getLogger("agentos_mw.access")  # formatted, not written: no disk in the loop
    access.handlers[:] = [logging.NullHandler()]
    access.propagate = False
    access.setLevel(logging.INFO)

    async def agents(request: Request) -> Response:
        return JSONResponse({"user": request.state.user_id})

    async def limited(request: Request) -> Response:
        return JSONResponse({"user": request.state.user_id})

    async def runs(request: Request) -> Response:
        async def events() -> Any:
            for i in range(CHUNKS):
                await asyncio.sleep(0.002)
                yield f"data: {i}\n\n".encode()

        return StreamingResponse(events(), media_type="text/event-stream")

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(websocket.scope["state"]["user_id"])
        await websocket.close()

    store = RedisStore(url=REDIS_URL, prefix=prefix, timeout=1.0)
    middleware = secure_stack(
        auth={
            "verification_keys": [SECRET],
            "scope_mappings": {"GET /limited": ["agents:read"], "GET /ws": ["agents:read"]},
        },
        rate_limit={
            "limits": ["1000000/minute"],
            "route_limits": {"GET /limited": f"{LIMITED}/day"},
            "store": store,
            "on_store_error": "deny",
        },
        cors={"allow_origins": ["https://ui.example"]},
        metrics={"registry": CollectorRegistry(), "path": "/metrics"},
    )
    return Starlette(
        routes=[
            Route("/health", health),
            Route("/agents", agents),
            Route("/limited", limited),
            Route("/agents/{agent_id}/runs", runs, methods=["POST"]),
            WebSocketRoute("/ws", ws),
        ],
        middleware=middleware,
    )


def serve(port: int, prefix: str) -> None:
    import uvicorn

    uvicorn.run(
        make_server_app(prefix),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        ws="websockets-sansio",
        timeout_graceful_shutdown=5,
    )


# -- tokens -------------------------------------------------------------------------------------


def mint(sub: str, *, key: str = SECRET, exp_in: int = 3600, **extra: Any) -> str:
    import jwt

    now = int(time.time())
    claims = {"sub": sub, "iat": now, "exp": now + exp_in, "scopes": ["agent_os:admin"], **extra}
    return jwt.encode(claims, key, algorithm="HS256")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


NONE_HEADER = _b64(b'{"alg":"none"}')


def bad_tokens() -> dict[str, str]:
    now = int(time.time())
    payload = _b64(json.dumps({"sub": "mallory", "exp": now + 3600}).encode())
    valid = mint("alice")
    head, _, sig = valid.split(".")
    return {
        "expired": mint("mallory", exp_in=-3600),
        "forged": mint("mallory", key=FORGER),
        "alg-none": f"{NONE_HEADER}.{payload}.",
        "tampered": f"{head}.{payload}.{sig}",
    }


# -- the load (this process) --------------------------------------------------------------------


class Tally:
    def __init__(self) -> None:
        self.requests = 0
        self.statuses: Counter[str] = Counter()
        self.by_kind: Counter[tuple[str, int]] = Counter()
        self.dropped = 0
        self.dropped_kinds: Counter[str] = Counter()
        self.unexpected: Counter[str] = Counter()
        self.accepted_bad = 0
        self.cut_short = 0
        self.limited: Counter[int] = Counter()

    def record(self, kind: str, status: int, expected: set[int]) -> None:
        self.requests += 1
        self.statuses["101" if status == 101 else f"{status // 100}xx"] += 1
        self.by_kind[(kind, status)] += 1
        if status not in expected:
            self.unexpected[f"{kind}:{status}"] += 1


async def load(port: int, duration: float, warmup_done: asyncio.Event, tally: Tally) -> None:
    import httpx

    base = f"http://127.0.0.1:{port}"
    users = [f"user-{i}" for i in range(20)]
    good = {u: mint(u) for u in users}
    bad = bad_tokens()
    limited_user = f"limited-{uuid.uuid4().hex[:8]}"
    limited_token = mint(limited_user)
    deadline = time.monotonic() + duration
    try:
        import websockets  # noqa: F401

        have_ws = True
    except ImportError:  # pragma: no cover - depends on the install
        have_ws = False

    async def http_one(client: httpx.AsyncClient, rng: random.Random) -> None:
        roll = rng.random()
        if roll < 0.40:
            user = rng.choice(users)
            response = await client.get(
                "/agents", headers={"authorization": f"Bearer {good[user]}"}
            )
            tally.record("valid", response.status_code, {200})
            if response.status_code == 200 and response.json() != {"user": user}:
                tally.unexpected["valid:wrong-user"] += 1
        elif roll < 0.55:
            user = rng.choice(users)
            async with client.stream(
                "POST", "/agents/a/runs", headers={"authorization": f"Bearer {good[user]}"}
            ) as response:
                events = [line async for line in response.aiter_lines() if line]
            tally.record("stream", response.status_code, {200})
            if events != [f"data: {i}" for i in range(CHUNKS)]:
                tally.cut_short += 1
        elif roll < 0.75:
            name = rng.choice(sorted(bad))
            where = rng.choice(["header", "cookie"])
            headers = (
                {"authorization": f"Bearer {bad[name]}"}
                if where == "header"
                else {"cookie": f"access_token={bad[name]}"}
            )
            response = await client.get("/agents", headers=headers)
            tally.record(name, response.status_code, {401})
            if response.status_code < 300:
                tally.accepted_bad += 1
        elif roll < 0.88:
            response = await client.get("/agents")
            tally.record("missing", response.status_code, {401})
            if response.status_code < 300:
                tally.accepted_bad += 1
        else:
            response = await client.get("/health")
            tally.record("health", response.status_code, {200})

    async def ws_one(rng: random.Random) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidStatus

        url = f"ws://127.0.0.1:{port}/ws"
        if rng.random() < 0.5:
            user = rng.choice(users)
            async with connect(
                url, additional_headers={"authorization": f"Bearer {good[user]}"}
            ) as ws:
                message = await asyncio.wait_for(ws.recv(), 10)
            tally.record("ws", 101, {101})
            if message != user:
                tally.cut_short += 1
        else:
            token = bad[rng.choice(sorted(bad))]
            try:
                async with connect(url, additional_headers={"authorization": f"Bearer {token}"}):
                    tally.accepted_bad += 1
                    tally.record("ws-bad", 101, {401})
            except InvalidStatus as exc:
                tally.record("ws-bad", exc.response.status_code, {401})

    async def worker(seed: int) -> None:
        rng = random.Random(seed)
        limits = httpx.Limits(max_connections=2, max_keepalive_connections=2)
        async with httpx.AsyncClient(base_url=base, timeout=10, limits=limits) as client:
            while time.monotonic() < deadline:
                ws_turn = have_ws and rng.random() < 0.08
                try:
                    if ws_turn:
                        await ws_one(rng)
                    else:
                        await http_one(client, rng)
                except Exception as exc:  # a dropped connection, a timeout, a protocol error
                    tally.dropped += 1
                    tally.dropped_kinds[type(exc).__name__] += 1

    async def limited_worker() -> None:
        """``LIMITED + 20`` requests spread over the run: exactly ``LIMITED`` may pass."""
        total = LIMITED + 20
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            for i in range(total):
                target = time.monotonic() + (deadline - time.monotonic()) / (total - i) * 0.9
                try:
                    response = await client.get(
                        "/limited", headers={"authorization": f"Bearer {limited_token}"}
                    )
                    tally.record("limited", response.status_code, {200, 429})
                    tally.limited[response.status_code] += 1
                except Exception as exc:
                    tally.dropped += 1
                    tally.dropped_kinds[type(exc).__name__] += 1
                await asyncio.sleep(max(0.0, target - time.monotonic()))

    await asyncio.gather(*(worker(i) for i in range(12)), limited_worker())


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the soak server exited during start-up")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the soak server did not start")


async def cleanup(prefix: str) -> int:
    import redis.asyncio as redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*", count=1000)]
        if keys:
            await client.delete(*keys)
        return len(keys)
    finally:
        await client.aclose()


async def redis_ok() -> bool:
    import redis.asyncio as redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=2)
    try:
        return bool(await client.ping())
    except Exception:
        return False
    finally:
        await client.aclose()


def run(duration: float) -> int:
    if not asyncio.run(redis_ok()):
        print(f"soak: Redis at {REDIS_URL} is unreachable", file=sys.stderr)
        return 2
    prefix = f"agentos_mw_soak:{uuid.uuid4().hex}:"
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.soak",
            "--serve",
            "--port",
            str(port),
            "--prefix",
            prefix,
        ],
        cwd=ROOT,
    )
    failures: list[str] = []
    tally = Tally()
    warmup = min(max(duration * 0.25, 3.0), 15.0)
    try:
        wait_ready(port, proc)

        async def main() -> tuple[int, int]:
            done = asyncio.Event()
            rss: list[int] = []

            async def sample() -> None:
                await asyncio.sleep(warmup)
                rss.append(rss_kb(proc.pid))

            sampler = asyncio.ensure_future(sample())
            await load(port, duration, done, tally)
            await sampler
            return rss[0], rss_kb(proc.pid)

        started = time.monotonic()
        rss_start, rss_end = asyncio.run(main())
        elapsed = time.monotonic() - started
    finally:
        proc.send_signal(signal.SIGINT)  # a graceful uvicorn shutdown
        try:
            code = proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
            failures.append("the server did not shut down within 15 s")
        removed = asyncio.run(cleanup(prefix))
    if code != 0:
        failures.append(f"the server exited with code {code}")

    growth = (rss_end - rss_start) / rss_start * 100 if rss_start else 0.0
    fivexx = tally.statuses["5xx"]
    if fivexx:
        failures.append(f"{fivexx} responses with status 5xx")
    if tally.dropped:
        failures.append(f"{tally.dropped} dropped connections {dict(tally.dropped_kinds)}")
    if growth >= 5.0:
        failures.append(f"RSS grew {growth:.1f} % after warm-up")
    if tally.accepted_bad:
        failures.append(f"{tally.accepted_bad} forged/expired/missing tokens accepted")
    if tally.unexpected:
        failures.append(f"unexpected statuses: {dict(tally.unexpected)}")
    if tally.limited[200] != LIMITED or tally.limited[429] != 20:
        failures.append(
            f"rate limit not exact: {tally.limited[200]} x 200 and {tally.limited[429]} x 429 "
            f"for a limit of {LIMITED} over {LIMITED + 20} requests"
        )
    if tally.cut_short:
        failures.append(f"{tally.cut_short} SSE streams or websocket sessions cut short")

    kinds: dict[str, dict[int, int]] = {}
    for (kind, status), count in sorted(tally.by_kind.items()):
        kinds.setdefault(kind, {})[status] = count
    report = {
        "duration_s": round(elapsed, 1),
        "warmup_s": warmup,
        "requests": tally.requests,
        "requests_per_s": round(tally.requests / elapsed, 1) if elapsed else 0,
        "status_mix": dict(sorted(tally.statuses.items())),
        "by_kind": kinds,
        "5xx": fivexx,
        "dropped_connections": tally.dropped,
        "rss_kb_after_warmup": rss_start,
        "rss_kb_end": rss_end,
        "rss_growth_pct": round(growth, 2),
        "forged_or_expired_accepted": tally.accepted_bad,
        "rate_limited_route": {
            "limit": LIMITED,
            "200": tally.limited[200],
            "429": tally.limited[429],
        },
        "redis_keys_cleaned": removed,
        "server_exit_code": code,
        "failures": failures,
    }
    print(json.dumps(report, indent=2))
    print("soak: FAIL" if failures else "soak: PASS")
    return 1 if failures else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--prefix", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.port, args.prefix)
        return
    if not 1 <= args.duration <= 3600:
        parser.error("--duration must be between 1 and 3600 seconds")
    sys.exit(run(args.duration))


if __name__ == "__main__":
    main()
