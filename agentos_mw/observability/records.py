"""A cheaper ``LogRecord`` for the access log, used only with the default record factory.

``logging.LogRecord.__init__`` recomputes per record what is constant for a fixed logging call
site (file name, module) or per process (process name via ``multiprocessing``); on a busy API
that is a large share of the access log's cost. :func:`make_record` fills the same attributes,
honouring ``logging.logThreads`` / ``logProcesses`` / ``logMultiprocessing``. When an
application installs its own record factory (``logging.setLogRecordFactory``), it is used
instead, through ``Logger.makeRecord``, so nothing that relies on it is bypassed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from typing import Any

_PATH = "agentos_mw/observability/access_log.py"
_STATIC: dict[str, Any] = {
    "args": (),
    "pathname": _PATH,
    "filename": "access_log.py",
    "module": "access_log",
    "exc_text": None,
    "stack_info": None,
    "lineno": 0,
    "funcName": "access",
}
_process_name: tuple[int, str | None] = (-1, None)
_pid = os.getpid()


def _after_fork() -> None:
    global _pid
    _pid = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def _current_process_name(pid: int) -> str | None:
    global _process_name
    if _process_name[0] == pid:
        return _process_name[1]
    name: str | None = "MainProcess"
    mp = sys.modules.get("multiprocessing")
    if mp is not None:
        with contextlib.suppress(Exception):  # the stdlib guards this lookup the same way
            name = mp.current_process().name
    _process_name = (pid, name)
    return name


#: (logger name, level, pid, logging flags) -> the record attributes fixed for them.
_templates: dict[tuple[Any, ...], dict[str, Any]] = {}
_TEMPLATES_MAX = 64


def _template(logger: logging.Logger, level: int, pid: int) -> dict[str, Any]:
    """The attributes that are the same for every access record of ``logger`` at ``level``."""
    key = (logger.name, level, pid, logging.logProcesses, logging.logMultiprocessing)
    found = _templates.get(key)
    if found is None:
        found = dict(_STATIC)
        found["name"] = logger.name
        found["levelname"] = logging.getLevelName(level)
        found["levelno"] = level
        found["processName"] = _current_process_name(pid) if logging.logMultiprocessing else None
        found["process"] = pid if logging.logProcesses else None
        if len(_templates) >= _TEMPLATES_MAX:
            _templates.clear()
        _templates[key] = found
    return found


def make_record(
    logger: logging.Logger, level: int, msg: str, exc_info: Any, extra: dict[str, Any]
) -> logging.LogRecord:
    """A record equivalent to ``logger.makeRecord(...)`` for a call site inside this package."""
    if logging.getLogRecordFactory() is not logging.LogRecord:
        return logger.makeRecord(logger.name, level, _PATH, 0, msg, (), exc_info, "access", extra)
    record: logging.LogRecord = logging.LogRecord.__new__(logging.LogRecord)
    data = record.__dict__
    data.update(_template(logger, level, _pid))
    created = time.time()
    data["msg"] = msg
    data["exc_info"] = exc_info
    data["created"] = created
    data["msecs"] = int((created - int(created)) * 1000) + 0.0
    data["relativeCreated"] = (created - logging._startTime) * 1000  # type: ignore[attr-defined]
    if logging.logThreads:
        data["thread"] = threading.get_ident()
        data["threadName"] = threading.current_thread().name
    else:
        data["thread"] = data["threadName"] = None
    if sys.version_info >= (3, 12):
        task = None
        if logging.logAsyncioTasks:  # type: ignore[attr-defined,unused-ignore]
            asyncio = sys.modules.get("asyncio")
            if asyncio is not None:
                with contextlib.suppress(Exception):
                    task = asyncio.current_task().get_name()
        data["taskName"] = task
    data.update(extra)
    return record
