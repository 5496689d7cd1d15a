"""Progress events: what nodes emit on LangGraph's custom stream.

The CLI renders them as progress bars and the API relays them over SSE and WebSocket, so
both show the same thing. Events are plain JSON-able dicts built from this model.
"""

from __future__ import annotations

from typing import Any, Literal

from langgraph.config import get_stream_writer
from pydantic import BaseModel, Field

EventType = Literal[
    "run_started",
    "plan_ready",
    "enhance_iteration",
    "enhance_done",
    "scene_started",
    "attempt_started",
    "variations_generated",
    "variations_scored",
    "attempt_validated",
    "scene_done",
    "run_done",
    "warning",
]


class ProgressEvent(BaseModel):
    type: EventType
    scene: int | None = None
    message: str = ""
    data: dict[str, Any] = Field(default_factory=dict)


def emit(type: EventType, message: str = "", *, scene: int | None = None, **data: Any) -> None:
    """Write one event to the custom stream; a no-op when the run is not being streamed."""
    try:
        writer = get_stream_writer()
    except RuntimeError:  # called outside a runnable context (unit tests of a node body)
        return
    writer(ProgressEvent(type=type, scene=scene, message=message, data=data).model_dump(mode="json"))
