"""Fixtures shared by the hostile suites: one event loop and one complete stack per module."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from tests.hostile.stack import CheckingHandler, Seen, checked_logs, full_stack


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as loop:
        yield loop


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[Any, Seen, CheckingHandler]]:
    with checked_logs() as handler:
        app, seen, _ = full_stack()
        yield app, seen, handler
