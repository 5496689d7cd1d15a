"""Errors the LLM agents raise, one tree so callers can catch them at the right level.

    LLMError                  an LLM agent call failed; carries the agent name and the
    │                         AgentEvents recorded before it failed (for the trace)
    ├── LLMTransientError     connection error, timeout, rate limit (429) or server error
    │                         (5xx), after the chat client's own retries: worth retrying
    │                         later, which the graph node's RetryPolicy does before it falls
    │                         back to the heuristic agent itself
    └── LLMParseError         the reply did not fit the schema even after one corrective
                              retry: the agent answers with its heuristic instead
                              (source="fallback")

Any other exception (a bad request, an authentication error, a bug) propagates unchanged:
retrying it would fail the same way, and hiding it behind a fallback would hide a
misconfiguration.
"""

from __future__ import annotations

from imageforge.agents.schemas import AgentEvent

__all__ = ["LLMError", "LLMParseError", "LLMTransientError"]


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
