"""The agents: planner, cinematographer and prompt engineer, LLM-backed or heuristic.

Each agent is an async function returning ``(result, events)``. Pass ``llm=None`` for the
offline heuristic agents, or a chat model from ``load_chat_model``; an LLM reply that cannot
be parsed falls back to the heuristic agent (recorded in the events), and an endpoint that
cannot answer raises ``LLMTransientError`` for the caller's retry policy.
"""

from agents.chat_model import describe_llm, load_chat_model
from agents.cinematographer import enhance
from agents.errors import LLMError, LLMParseError, LLMTransientError
from agents.heuristics import (
    critique_heuristic,
    enhance_heuristic,
    plan_heuristic,
    scenes_for_duration,
)
from agents.planner import PlanDraft, SceneDraft, plan
from agents.prompt_engineer import review
from agents.rubric import analyze_prompt, missing_elements, score_prompt
from agents.structured import ask_structured, is_transient
from agents.system_prompts import load_system_prompt

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
