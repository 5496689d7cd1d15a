"""The agents: planner, cinematographer and prompt engineer, LLM-backed or heuristic.

Each agent is an async function returning ``(result, events)``. Pass ``llm=None`` for the
offline heuristic agents, or a chat model from ``load_chat_model``; an LLM reply that cannot
be parsed falls back to the heuristic agent (recorded in the events), and an endpoint that
cannot answer raises ``LLMTransientError`` for the caller's retry policy.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> the module that defines it. Loaded on first use (PEP 562): the data model
#: in agents.schemas is imported everywhere, and must not drag in langchain-openai with it.
_EXPORTS = {
    "describe_llm": "imageforge.agents.chat_model",
    "load_chat_model": "imageforge.agents.chat_model",
    "enhance": "imageforge.agents.cinematographer",
    "LLMError": "imageforge.agents.errors",
    "LLMParseError": "imageforge.agents.errors",
    "LLMTransientError": "imageforge.agents.errors",
    "critique_heuristic": "imageforge.agents.heuristics",
    "enhance_heuristic": "imageforge.agents.heuristics",
    "plan_heuristic": "imageforge.agents.heuristics",
    "scenes_for_duration": "imageforge.agents.heuristics",
    "PlanDraft": "imageforge.agents.planner",
    "SceneDraft": "imageforge.agents.planner",
    "plan": "imageforge.agents.planner",
    "review": "imageforge.agents.prompt_engineer",
    "analyze_prompt": "imageforge.agents.rubric",
    "missing_elements": "imageforge.agents.rubric",
    "score_prompt": "imageforge.agents.rubric",
    "ask_structured": "imageforge.agents.structured",
    "is_transient": "imageforge.agents.structured",
    "load_system_prompt": "imageforge.agents.system_prompts",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'agents' has no attribute {name!r}")


__all__ = [
    "LLMError",
    "LLMParseError",
    "LLMTransientError",
    "PlanDraft",
    "SceneDraft",
    "analyze_prompt",
    "ask_structured",
    "critique_heuristic",
    "describe_llm",
    "enhance",
    "enhance_heuristic",
    "is_transient",
    "load_chat_model",
    "load_system_prompt",
    "missing_elements",
    "plan",
    "plan_heuristic",
    "review",
    "scenes_for_duration",
    "score_prompt",
]
