"""What the agents need to reach a chat model; owned here, composed by ``graph.context``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["LLMBackend", "LLMSettings"]

LLMBackend = Literal["auto", "heuristic", "openai"]


class LLMSettings(BaseModel):
    """The chat model behind the planner, cinematographer, prompt engineer and assistant.

    ``auto`` uses the OpenAI-compatible endpoint when one is configured (``base_url`` or
    ``OPENAI_API_KEY``) and the deterministic heuristic agents otherwise, so nothing is
    called that the user did not set up.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: LLMBackend = Field("auto", description="auto, heuristic or openai.")
    model: str = Field("gpt-4o-mini", description="Chat model name at the OpenAI-compatible endpoint.")
    base_url: str | None = Field(None, description="OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp, ...).")
    timeout_s: float = Field(60.0, gt=0, description="Seconds one LLM request may take.")
    max_retries: int = Field(2, ge=0, le=10, description="Client-side retries with backoff per LLM call.")
