"""The built backends a run uses: chat model, image generator, scorers.

Backends are built once per process for each distinct BackendSettings, because loading a
model is the expensive part; the CLI and the API build them at the boundary (where secrets
are read) and pass them in the run context.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from imageforge.graph.context import BackendSettings, Context

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from imageforge.scoring.factory import ScorerSet
    from imageforge.tools.base import ImageGenerator


@dataclass
class Services:
    llm: BaseChatModel | None
    generator: ImageGenerator
    scorers: ScorerSet
    notes: list[str] = field(
        default_factory=list, metadata={"description": "One line per role: what serves it and how to change it."}
    )

    def describe(self) -> dict[str, Any]:
        """What served each role, for summary.json."""
        llm = None if self.llm is None else getattr(self.llm, "model_name", type(self.llm).__name__)
        return {
            "llm": llm or "heuristic",
            "generator": {"name": self.generator.name, "model": self.generator.model},
            "scorers": [info.model_dump() for info in self.scorers.infos()],
            "consistency": {"name": self.scorers.consistency.name, "model": self.scorers.consistency.model},
            "missing_scorers": dict(self.scorers.missing),
        }


_cache: dict[tuple[BackendSettings, str | None, int], Services] = {}
_lock = threading.Lock()


def build_services(backends: BackendSettings, *, api_key: str | None = None, owner: int | None = None) -> Services:
    """Build (or reuse) the backends for these settings.

    Reused per thread: an event loop lives in one thread, and the chat model's async HTTP
    client belongs to the loop that first used it (the service runs jobs on a loop of their
    own). Model weights are shared regardless: generators and scorers load them once per
    process through tools.model_cache. ``owner`` names the thread whose event loop will use
    them (default: the calling thread), so they can be built in a worker thread for a loop.
    """
    from imageforge.agents.chat_model import describe_llm, load_chat_model
    from imageforge.scoring.factory import build_scorers
    from imageforge.tools.factory import build_generator

    key = (backends, api_key, threading.get_ident() if owner is None else owner)
    with _lock:
        if key in _cache:
            return _cache[key]
        llm = load_chat_model(
            backend=backends.llm.backend,
            model=backends.llm.model,
            base_url=backends.llm.base_url,
            api_key=api_key,
            timeout_s=backends.llm.timeout_s,
            max_retries=backends.llm.max_retries,
            structured_output=backends.llm.structured_output,
            max_tokens=backends.llm.max_tokens,
        )
        generator, generator_note = build_generator(backends.generator, backends.device)
        scorers, scorer_note = build_scorers(backends.scoring, backends.device)
        services = Services(
            llm=llm, generator=generator, scorers=scorers, notes=[describe_llm(llm), generator_note, scorer_note]
        )
        _cache[key] = services
        return services


def services_for(context: Context) -> Services:
    """The run's backends; blocking when they are not built yet (see ``aservices_for``)."""
    return context.services if context.services is not None else build_services(context.backends)


async def aservices_for(context: Context) -> Services:
    """The run's backends, built in a worker thread when this loop has none yet: loading models
    reads files and must not block the event loop (``langgraph dev`` refuses it)."""
    if context.services is not None:
        return context.services
    built = _cache.get((context.backends, None, threading.get_ident()))  # a dict read needs no lock
    if built is not None:
        return built
    return await asyncio.to_thread(build_services, context.backends, owner=threading.get_ident())
