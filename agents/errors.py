"""Errors the LLM agents raise, one tree so callers can catch them at the right level.

    LLMError                  an LLM agent call failed; carries the agent name and the
    │                         AgentEvents recorded before it failed (for the trace)
    ├── LLMTransientError     connection error, timeout, rate limit (429) or server error
    │                         (5xx), after the chat client's own retries: worth retrying
    │                         later, which the graph node's RetryPolicy does before it falls
    │                         back to the heuristic agent itself
    ├── LLMRequestError       the server refused the request itself: a 400/413/422, or the
    │                         same server error twice in a row (llama.cpp answers a request
    │                         that fails its schema with a 500). Sending it again would fail
    │                         the same way, so the heuristic agent answers that step at once
    │                         and the trace quotes the server's message
    └── LLMParseError         the reply did not fit the schema even after one corrective
                              retry: the agent answers with its heuristic instead
                              (source="fallback")

Any other exception (an authentication error, an unknown model, a bug) propagates unchanged:
hiding it behind a fallback would hide a misconfiguration.
"""

from __future__ import annotations

from imageforge.agents.schemas import AgentEvent

__all__ = ["LLMError", "LLMParseError", "LLMRequestError", "LLMTransientError"]


class LLMError(Exception):
    """An LLM agent call failed. ``events`` are the retries recorded before the failure."""

    def __init__(self, message: str, *, agent: str = "", events: list[AgentEvent] | None = None) -> None:
        super().__init__(message)
        self.agent = agent
        self.events: list[AgentEvent] = list(events or [])


class LLMTransientError(LLMError):
    """The endpoint could not answer now (transport, timeout, 429, 5xx); a later try may work."""


class LLMParseError(LLMError):
    """The endpoint answered, twice, with something that does not fit the schema."""


class LLMRequestError(LLMError):
    """The endpoint refused the request as malformed; retrying it would fail the same way."""
