"""/api/estimate prices agent calls from this deployment's measured runs when it has any."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from imageforge.agents.usage import AgentUsage, UsageTotals
from imageforge.api.services.estimate import EstimateQuery, estimate, mean_call, recent_summaries
from imageforge.traces import layout
from imageforge.traces.schemas import RunSummary
from tests.api.support import make_settings


def _run(root: Path, generation_id: str, status: str, requests: int, prompt: int, completion: int) -> None:
    usage = UsageTotals(requests=requests, prompt_tokens=prompt, completion_tokens=completion, latency_s=2.0 * requests)
    usage.by_agent["planner"] = AgentUsage(requests=requests)
    summary = RunSummary(
        generation_id=generation_id,
        status=status,  # type: ignore[arg-type]
        concept="coffee",
        llm_usage=usage,
        started_at=datetime.now(UTC),
    )
    folder = layout.generation_dir(root, generation_id)
    folder.mkdir(parents=True)
    (folder / layout.SUMMARY).write_text(summary.model_dump_json())


def test_measured_tokens_and_the_models_price_replace_the_constants(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, llm={"backend": "openai", "model": "gpt-4o-mini", "base_url": "http://x/v1"})
    _run(settings.trace_root, "a", "completed", requests=10, prompt=20_000, completion=3_000)
    _run(settings.trace_root, "b", "completed", requests=10, prompt=20_000, completion=3_000)
    _run(settings.trace_root, "c", "failed", requests=50, prompt=900_000, completion=90_000)  # not learnt from
    measured = mean_call(recent_summaries(settings.trace_root))
    assert measured is not None and measured.runs == 2
    assert (measured.prompt_tokens, measured.completion_tokens, measured.latency_s) == (2000, 300, 2.0)

    result = estimate(EstimateQuery(num_scenes=1, max_enhancement_iterations=1, generator="sketch"), settings, measured)
    per_call = (2000 * 0.15 + 300 * 0.60) / 1e6  # gpt-4o-mini's list price per million tokens
    assert result.measured and result.llm == "openai"
    assert result.cost_usd == pytest.approx(round(2 * per_call, 4))
    assert any("measured over the last 2 completed run(s)" in note for note in result.assumptions)


def test_without_measured_runs_the_constants_stay_and_say_so(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, llm={"backend": "openai", "model": "gpt-4o-mini", "base_url": "http://x/v1"})
    assert mean_call(recent_summaries(settings.trace_root)) is None
    result = estimate(EstimateQuery(num_scenes=1, generator="sketch"), settings, None)
    assert not result.measured
    assert any("a constant, no measured runs" in note for note in result.assumptions)


def test_a_model_without_a_price_keeps_the_constant(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, llm={"backend": "openai", "model": "smollm2", "base_url": "http://x/v1"})
    _run(settings.trace_root, "a", "completed", requests=4, prompt=8_000, completion=800)
    result = estimate(
        EstimateQuery(num_scenes=1, generator="sketch"), settings, mean_call(recent_summaries(settings.trace_root))
    )
    assert not result.measured
