"""What the agents need to reach a chat model; owned here, composed by ``graph.context``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["LLMBackend", "LLMSettings", "StructuredOutputMethod"]

LLMBackend = Literal["auto", "heuristic", "openai"]
StructuredOutputMethod = Literal["function_calling", "json_schema", "json_mode"]
"""How an agent asks for a typed reply: a forced tool call (OpenAI, vLLM, Ollama, llama.cpp with a
function-calling chat format), a JSON-schema response format (OpenAI, vLLM, recent llama.cpp and
Ollama), or plain JSON mode with the schema in the prompt (any server that knows response_format)."""


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
    max_retries: int = Field(
        2, ge=0, le=10, description="Retries with backoff per LLM call for transient errors (timeouts, 429, 5xx)."
    )
    max_tokens: int | None = Field(
        2048,
        ge=16,
        le=65536,
        description="Cap on a reply's length; a small local model left unbounded can write until its context is full.",
    )
    structured_output: StructuredOutputMethod = Field(
        "function_calling",
        description="How typed replies are asked for: function_calling, json_schema or json_mode.",
    )
