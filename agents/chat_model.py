"""Which chat model serves the agents: any OpenAI-compatible endpoint, or none.

One client class, ``langchain_openai.ChatOpenAI``, covers OpenAI itself and the local
servers that speak its API (vLLM, Ollama, llama.cpp, LM Studio). ``None`` means the offline
heuristic agents answer. ``OpenAICompatibleChat`` adds what differs between those servers:
the structured-output method, and request shapes all of them accept (an assistant message
that only calls tools carries ``content: ""``, not ``null``, which llama.cpp's schema
refuses). The openai client's own retries are off: ``agents.structured`` retries transient
errors itself, so that a request the server refuses as malformed is recognised and not sent
again.
"""

from __future__ import annotations

from typing import Any

import httpx
from langchain_core.language_models import BaseChatModel
from langchain_openai import ChatOpenAI

from imageforge.agents.settings import StructuredOutputMethod

__all__ = [
    "DEFAULT_OPENAI_BASE_URL",
    "LLM_BACKENDS",
    "PLACEHOLDER_API_KEY",
    "OpenAICompatibleChat",
    "describe_llm",
    "load_chat_model",
]

LLM_BACKENDS: tuple[str, ...] = ("auto", "heuristic", "openai")
DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"
#: Sent to local servers that need no key; the openai client refuses to start without one.
PLACEHOLDER_API_KEY = "not-needed"


class OpenAICompatibleChat(ChatOpenAI):
    """``ChatOpenAI`` with the per-server choices the agents read."""

    structured_output: StructuredOutputMethod = "function_calling"
    transient_retries: int = 2
    """Retries of a transient failure, done by ``agents.structured.ask_structured``."""

    def _get_request_payload(self, input_: Any, *, stop: list[str] | None = None, **kwargs: Any) -> dict:
        payload = super()._get_request_payload(input_, stop=stop, **kwargs)
        for message in payload.get("messages", []):
            if message.get("role") == "assistant" and message.get("content") is None:
                message["content"] = ""  # a string every server's schema takes; null is refused by some
        return payload


def load_chat_model(
    *,
    backend: str,
    model: str,
    base_url: str | None = None,
    api_key: str | None = None,
    timeout_s: float = 60.0,
    max_retries: int = 2,
    structured_output: StructuredOutputMethod = "function_calling",
    max_tokens: int | None = 2048,
) -> BaseChatModel | None:
    """Build the chat model for ``backend``; ``None`` selects the heuristic agents.

    ``"heuristic"`` never uses an LLM. ``"auto"`` uses one when an endpoint or a key is
    given and the heuristic agents otherwise. ``"openai"`` requires an endpoint or a key.
    Nothing is sent over the network here.
    """
    # 1. Check inputs
    if backend not in LLM_BACKENDS:
        raise ValueError(f"`backend` must be one of {LLM_BACKENDS}, got {backend!r}.")
    if not timeout_s > 0:
        raise ValueError(f"`timeout_s` must be positive seconds, got {timeout_s}.")
    if max_retries < 0:
        raise ValueError(f"`max_retries` must be 0 or more, got {max_retries}.")

    # 2. Decide
    if backend == "heuristic":
        return None
    if not base_url and not api_key:
        if backend == "auto":
            return None
        raise ValueError(
            "`backend` is 'openai' but neither `base_url` nor `api_key` is set: set "
            "IMAGEFORGE_LLM__BASE_URL to an OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp) "
            "or OPENAI_API_KEY for OpenAI, or choose the 'heuristic' backend."
        )
    if not model or not model.strip():
        raise ValueError(f"`model` must name the chat model served at the endpoint, got {model!r}.")

    # 3. Build (no request is made until the first call). Each model gets its own async HTTP
    # client: langchain-openai otherwise shares one per process, and an httpx client belongs
    # to the event loop that first used it, while the service runs jobs and API requests on
    # two loops.
    return OpenAICompatibleChat(
        model=model,
        base_url=base_url or None,
        api_key=api_key or PLACEHOLDER_API_KEY,
        timeout=timeout_s,
        max_retries=0,
        transient_retries=max_retries,
        structured_output=structured_output,
        max_tokens=max_tokens,
        stream_usage=True,
        http_async_client=httpx.AsyncClient(timeout=timeout_s),
    )


def describe_llm(llm: BaseChatModel | None) -> str:
    """One line for the CLI and the API saying which agents answer and how to switch."""
    if llm is None:
        return "LLM: heuristic agents (offline). Set IMAGEFORGE_LLM__BASE_URL or OPENAI_API_KEY to use an LLM."
    if isinstance(llm, ChatOpenAI):
        return f"LLM: {llm.model_name} at {llm.openai_api_base or DEFAULT_OPENAI_BASE_URL}"
    name = getattr(llm, "model_name", None) or getattr(llm, "model", None) or llm._llm_type
    return f"LLM: {name} ({type(llm).__name__})"
