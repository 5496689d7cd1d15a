"""What the LLM cost a run: tokens, requests and latency, summed from the agents' events.

Pure: the agents record one ``llm_call`` event per request (``agents.structured``); the
graph keeps the events with each step, and the run summary calls ``usage_totals`` over them.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, Field

from imageforge.agents.schemas import AgentEvent

__all__ = ["AgentUsage", "UsageTotals", "usage_totals"]


class AgentUsage(BaseModel):
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0


class UsageTotals(AgentUsage):
    """A run's LLM usage in total and per agent role, and the models that answered."""

    by_agent: dict[str, AgentUsage] = Field(default_factory=dict)
    models: list[str] = Field(default_factory=list)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _add(into: AgentUsage, event: AgentEvent) -> None:
    assert event.usage is not None
    into.requests += 1
    into.prompt_tokens += event.usage.prompt_tokens
    into.completion_tokens += event.usage.completion_tokens
    into.latency_s = round(into.latency_s + event.usage.latency_s, 4)


def usage_totals(events: Iterable[AgentEvent]) -> UsageTotals:
    """Sum the ``llm_call`` events; other events (retries, fallbacks) cost no tokens we know of."""
    totals = UsageTotals()
    for event in events:
        if event.kind != "llm_call" or event.usage is None:
            continue
        _add(totals, event)
        _add(totals.by_agent.setdefault(event.agent, AgentUsage()), event)
        if event.usage.model and event.usage.model not in totals.models:
            totals.models.append(event.usage.model)
    return totals
