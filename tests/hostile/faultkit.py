"""Fault injection helpers: a private redis-server, a TCP proxy that adds latency or goes dark,
and a raw HTTP identity provider that can be slow, drip-feed, answer garbage or rotate keys.

Everything binds to 127.0.0.1 on free ports and is stopped by the test that started it; the
shared Redis is never touched.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port}")


class PrivateRedis:
    """``redis-server --port <free> --save ''``: start, kill, restart on the same port."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server")
        self.binary = binary
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        options = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), *options],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


@contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        server.kill()


_Server = TypeVar("_Server", bound="_LoopServer")


class _LoopServer:
    """A TCP server on its own thread and event loop, stopped on exit; every connection runs as
    a tracked task (cancelled at shutdown) through :meth:`_connection`."""

    def __init__(self) -> None:
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self: _Server) -> _Server:
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)

    def _run(self) -> None:
        self._loop.run_until_complete(self._main())
        self._loop.close()

    def _track(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def _main(self) -> None:
        self._stop = asyncio.Event()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self._track(self._connection(reader, writer))

        server = await asyncio.start_server(handle, "127.0.0.1", self.port)
        self._ready.set()
        await self._stop.wait()
        server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class LatencyProxy(_LoopServer):
    """A TCP proxy on its own thread and loop: ``delay`` seconds added to every chunk each way;
    ``dark=True`` accepts connections but forwards nothing (a stalled network)."""

    def __init__(self, target_port: int) -> None:
        super().__init__()
        self.target_port = target_port
        self.delay = 0.0
        self.dark = False

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                while self.dark:
                    await asyncio.sleep(0.01)
                if self.delay:
                    await asyncio.sleep(self.delay)
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._track(self._pipe(reader, up_writer))
        self._track(self._pipe(up_reader, writer))


class IdP(_LoopServer):
    """A raw HTTP/1.1 JWKS endpoint on its own thread. ``mode``: ``ok`` (serve ``keys``),
    ``status`` (HTTP 500), ``garbage`` (``body`` as is), ``slow`` (``delay`` then ok),
    ``drip`` (headers, then one byte every ``delay`` seconds), ``reset`` (close at once)."""

    def __init__(self) -> None:
        super().__init__()
        self.url = f"http://127.0.0.1:{self.port}/jwks.json"
        self.keys: list[dict[str, Any]] = []
        self.mode = "ok"
        self.body = b""
        self.delay = 0.0
        self.hits = 0

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            self.hits += 1
            mode = self.mode
            if mode == "reset":
                return
            if mode == "slow":
                await asyncio.sleep(self.delay)
            body = json.dumps({"keys": self.keys}).encode()
            status = b"200 OK"
            if mode == "garbage":
                body = self.body
            elif mode == "status":
                status, body = b"500 Internal Server Error", b"oops"
            head = b"HTTP/1.1 %s\r\ncontent-type: application/json\r\n" % status
            if mode == "drip":
                writer.write(head + b"content-length: %d\r\n\r\n" % len(body))
                for i in range(len(body)):
                    await writer.drain()
                    await asyncio.sleep(self.delay)
                    writer.write(body[i : i + 1])
            else:
                writer.write(head + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body))
                writer.write(body)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
