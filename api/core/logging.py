"""Logging of the server: uvicorn's configuration with the project's loggers on its handler,
and a filter that keeps secrets out of every line.

uvicorn's access log prints each request's path with its query string, and a token sent as
``?token=`` (EventSource, WebSocket, an old viewer link) would land there whole; start-up
notes print endpoint URLs, which may carry ``user:password@`` or ``?api-key=``. The filter
rewrites a record's arguments and message before any handler formats it.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from imageforge.api.core.redact import redact_path, redact_text

__all__ = ["PROJECT_LOGGERS", "RedactingFilter", "install_redaction", "log_config"]

#: Loggers of this project, shown beside uvicorn's (start-up notes, job failures).
PROJECT_LOGGERS = ("imageforge", "api", "graph", "agents", "tools", "scoring", "traces")
#: uvicorn's loggers: the access log (paths with queries) and the error log (tracebacks).
UVICORN_LOGGERS = ("uvicorn.access", "uvicorn.error")


def _clean(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    return redact_text(redact_path(value)) if value.startswith("/") else redact_text(value)


class RedactingFilter(logging.Filter):
    """Query values and URL credentials out of a record (its message and its arguments)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_text(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_clean(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: _clean(arg) for key, arg in record.args.items()}
        return True


def install_redaction() -> None:
    """Put the filter on uvicorn's and the project's loggers, once per process, however the
    server was started (``imageforge serve`` or ``uvicorn --factory``)."""
    # A logger's filter sees only the records made by that very logger; a handler's sees every
    # record it writes, the project's child loggers' included.
    loggers = [logging.getLogger(name) for name in ("", *UVICORN_LOGGERS, *PROJECT_LOGGERS)]
    for filterer in [*loggers, *(handler for logger in loggers for handler in logger.handlers)]:
        if not any(isinstance(existing, RedactingFilter) for existing in filterer.filters):
            filterer.addFilter(RedactingFilter())


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging configuration plus the project's loggers on its default handler, every
    handler behind the redacting filter."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact"] = {"()": RedactingFilter}
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("redact")
    for name in PROJECT_LOGGERS:
        config["loggers"][name] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return config
