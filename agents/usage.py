"""What the LLM cost a run: tokens, requests and latency, summed from the agents' events.

Pure: the agents record one ``llm_call`` event per request (``agents.structured``); the
graph keeps the events with each step, and the run summary calls ``usage_totals`` over them.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field

from imageforge.agents.schemas import AgentEvent

__all__ = [
    "DEFAULT_PRICES",
    "AgentUsage",
    "ModelPrice",
    "UsageTotals",
    "llm_cost_usd",
    "price_for",
    "tokens_cost_usd",
    "usage_totals",
]


class ModelPrice(BaseModel):
    """US dollars per million tokens, as the provider bills them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: float = Field(ge=0)
    completion: float = Field(ge=0)


#: List prices (USD per million tokens, 2026-11) of the OpenAI models README suggests. A model
#: not in the table is not priced (a local server's model costs what its machine costs).
DEFAULT_PRICES: dict[str, ModelPrice] = {
    "gpt-4o-mini": ModelPrice(prompt=0.15, completion=0.60),
    "gpt-4o": ModelPrice(prompt=2.50, completion=10.00),
    "gpt-4.1-mini": ModelPrice(prompt=0.40, completion=1.60),
    "gpt-4.1": ModelPrice(prompt=2.00, completion=8.00),
}


def price_for(model: str, prices: dict[str, ModelPrice]) -> ModelPrice | None:
    """The price of a served model name, which often carries a date or a path
    ("gpt-4o-mini-2024-07-18"): the longest table key it starts with; None when no key fits."""
    key = max((k for k in prices if model.startswith(k)), key=len, default=None)
    return None if key is None else prices[key]


def tokens_cost_usd(prompt_tokens: float, completion_tokens: float, price: ModelPrice) -> float:
    return (prompt_tokens * price.prompt + completion_tokens * price.completion) / 1e6


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


def llm_cost_usd(events: Iterable[AgentEvent], prices: dict[str, ModelPrice]) -> tuple[float, list[str]]:
    """The requests' cost from measured tokens: (USD for the priced models, models with no price)."""
    total, unpriced = 0.0, []
    for event in events:
        if event.kind != "llm_call" or event.usage is None:
            continue
        price = price_for(event.usage.model, prices)
        if price is None:
            if event.usage.model not in unpriced:
                unpriced.append(event.usage.model)
            continue
        total += tokens_cost_usd(event.usage.prompt_tokens, event.usage.completion_tokens, price)
    return round(total, 6), unpriced
