"""Requests/s over loopback: uvicorn in a subprocess, the load generator in another process.

Uses ``wrk`` when installed (``apt-get install wrk``), else :mod:`benchmarks.loadgen`. Each
variant is one app factory in :mod:`benchmarks.apps`; all run in one invocation so their ratios
are comparable. Bounded: a few seconds per variant, loopback only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rss_kb(pid: int) -> int:
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def _wait_ready(port: int, timeout: float = 20.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not start")


def _load(
    port: int, path: str, headers: list[str], duration: float, connections: int
) -> dict[str, float]:
    url = f"http://127.0.0.1:{port}{path}"
    if shutil.which("wrk"):
        cmd = ["wrk", "-t1", f"-c{connections}", f"-d{int(duration)}s", "--latency"]
        for header in headers:
            cmd += ["-H", header]
        out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

        def lat(p: str) -> float:
            m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
            if not m:
                return 0.0
            scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
            return float(m.group(1)) * scale

        non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
        return {
            "rps": rps,
            "p50_ms": lat("50"),
            "p99_ms": lat("99"),
            "non2xx": float(non2xx.group(1)) if non2xx else 0.0,
        }
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.loadgen",
        url,
        "--connections",
        str(connections),
        "--duration",
        str(duration),
    ]
    for header in headers:
        cmd += ["--header", header]
    result = json.loads(
        subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT).stdout
    )
    statuses = result["statuses"]
    non2xx = sum(v for k, v in statuses.items() if not k.startswith("2")) + result["errors"]
    return {
        "rps": result["rps"],
        "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"],
        "non2xx": float(non2xx),
    }


def measure(factory: str, workers: int, duration: float, connections: int = 64) -> dict[str, float]:
    from .apps import BENCH_TOKEN

    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        f"benchmarks.apps:{factory}",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        _wait_ready(port)
        time.sleep(0.5 if workers == 1 else 1.5)
        headers = [f"authorization: Bearer {BENCH_TOKEN}"]
        _load(port, "/agents", headers, 1.0, connections)  # warm-up
        rss_before = _rss_kb(server.pid)
        result = _load(port, "/agents", headers, duration, connections)
        result["rss_mb"] = _rss_kb(server.pid) / 1024
        result["rss_start_mb"] = rss_before / 1024
        return result
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


VARIANTS = [
    ("bare Starlette app", "bare"),
    ("secure_stack() complete", "stack"),
    ("5 no-op BaseHTTPMiddleware", "five_basehttp"),
    ("5 no-op pure-ASGI layers", "five_pure"),
    ("Agno JWTMiddleware (HS256)", "agno_jwt"),
    ("agentos_mw JWTMiddleware (HS256, cached)", "our_jwt"),
]


def run(quick: bool) -> str:
    duration = 3.0 if quick else 8.0
    tool = "wrk -t1 -c64" if shutil.which("wrk") else "bundled asyncio client, 64 connections"
    lines = [
        "### Over loopback with uvicorn (GET /agents, HS256 bearer token)",
        "",
        f"Load generator: {tool}, {duration:.0f} s per variant after a 1 s warm-up.",
        "",
        "| variant | workers | requests/s | vs bare | p50 ms | p99 ms | non-2xx | server RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for workers in (1, 2):
        base_rps = 0.0
        for label, factory in VARIANTS:
            r = measure(factory, workers, duration)
            if factory == "bare":
                base_rps = r["rps"]
            ratio = r["rps"] / base_rps if base_rps else 0.0
            lines.append(
                f"| {label} | {workers} | {r['rps']:,.0f} | {ratio:.0%} | {r['p50_ms']:.2f} | "
                f"{r['p99_ms']:.2f} | {int(r['non2xx'])} | {r['rss_mb']:.1f} |"
            )
            print(lines[-1], flush=True)
    return "\n".join(lines)
