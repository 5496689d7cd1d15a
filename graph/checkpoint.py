"""Checkpoint serialisation that knows ImageForge's state types.

LangGraph's msgpack serializer is moving to an allow-list of the types it rebuilds from a
checkpoint; state here is made of our pydantic models and dataclasses, so they are listed
explicitly (and nothing else) for every durable checkpointer the CLI or the API opens.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect

from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from pydantic import BaseModel

STATE_MODULES = (
    "imageforge.agents.schemas",
    "imageforge.graph.context",
    "imageforge.tools.schemas",
    "imageforge.tools.references",
    "imageforge.scoring.schemas",
    "imageforge.traces.schemas",
    "imageforge.graph.state",
)


def state_types() -> list[tuple[str, str]]:
    """(module, class name) of every pydantic model and dataclass defined in the state modules."""
    found = []
    for name in STATE_MODULES:
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if (
                inspect.isclass(value)
                and value.__module__ == name
                and (issubclass(value, BaseModel) or dataclasses.is_dataclass(value))
            ):
                found.append((name, attr))
    return sorted(found)


def serializer() -> JsonPlusSerializer:
    return JsonPlusSerializer(allowed_msgpack_modules=state_types())
