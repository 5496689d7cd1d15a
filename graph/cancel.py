"""Stopping a run at a node boundary.

A cancel request is honoured when the next node starts, never in the middle of one, so a
cancelled run keeps every image and trace file it finished and its checkpoint stays clean:
the node that refused to start is recorded as failed and can run again on resume.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from langgraph.runtime import Runtime

from imageforge.graph.context import Context

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


class RunCancelled(Exception):
    """The run was asked to stop; raised at the start of the next node."""


def check_cancelled(context: Context) -> None:
    if context.should_stop is not None and context.should_stop():
        raise RunCancelled("cancelled at a node boundary")


def stoppable(node: F) -> F:
    """Wrap a node so that it refuses to start once the run's ``should_stop`` says so."""

    @functools.wraps(node)
    async def wrapper(state: Any, runtime: Runtime[Context], *args: Any, **kwargs: Any) -> Any:
        check_cancelled(runtime.context)
        return await node(state, runtime, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def reraise_cancel(error: BaseException) -> None:
    """Error handlers fall back on LLM faults, never on a cancel request."""
    if isinstance(error, RunCancelled):
        raise error
