"""Logging of the server: uvicorn's configuration with the project's loggers on its handler."""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["PROJECT_LOGGERS", "log_config"]

#: Loggers of this project, shown beside uvicorn's (start-up notes, job failures).
PROJECT_LOGGERS = ("imageforge", "api", "graph", "agents", "tools", "scoring", "traces")


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging configuration plus the project's loggers on its default handler."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    for name in PROJECT_LOGGERS:
        config["loggers"][name] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return config
