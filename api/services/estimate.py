"""Images, time and cost of a storyboard before it runs.

The model is seed 004's table: at 4 variations and 4 enhancement iterations a scene costs
about $0.10 and takes about 60-90 s with hosted backends. A scene's time and cost are its
images (variations x attempts) at the generator's price plus its agent calls (two per
enhancement iteration) at the LLM's price, so both scale with the settings. Prices and
per-call seconds are deployment settings, keyed by backend name.
"""

from __future__ import annotations

import os
from pathlib import Path

from cachetools.func import ttl_cache
from pydantic import BaseModel, ConfigDict, Field

from imageforge.agents.heuristics import DEFAULT_SCENES, MAX_SCENES, SECONDS_PER_SCENE, scenes_for_duration
from imageforge.agents.settings import LLMBackend
from imageforge.agents.usage import price_for, tokens_cost_usd
from imageforge.api.core.config import Settings
from imageforge.api.models.operations import EstimatePublic
from imageforge.tools.settings import GeneratorBackend
from imageforge.traces.reader import CorruptTraceError, TraceNotFoundError, read_summary
from imageforge.traces.schemas import RunSummary

__all__ = [
    "EstimateQuery",
    "MeasuredCalls",
    "estimate",
    "mean_call",
    "measured_calls",
    "recent_summaries",
    "resolve_generator",
    "resolve_llm",
]

#: Seed 004's spread: ~60 s at best, ~90 s typically, for the same work.
HIGH_OVER_LOW = 1.5
#: How many recent completed runs the LLM figures are measured over.
RECENT_RUNS = 20


class EstimateQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    num_scenes: int | None = Field(None, ge=1, le=MAX_SCENES, description="Scene count; or give target_duration.")
    target_duration: float | None = Field(None, gt=0, le=600, description="Video length in seconds.")
    num_variations: int = Field(4, ge=1, le=16)
    max_enhancement_iterations: int = Field(4, ge=1, le=10)
    max_retries: int = Field(2, ge=0, le=5)
    generator: GeneratorBackend | None = Field(None, description="Defaults to the server's generator.")
    llm: LLMBackend | None = Field(None, description="Defaults to the server's LLM backend.")


def resolve_generator(choice: str, settings: Settings) -> str:
    """What ``auto`` would use for pricing: a configured real backend, else the sketch."""
    if choice != "auto":
        return choice
    if settings.generator.backend != "auto":
        return settings.generator.backend
    if settings.generator.model:
        return "diffusers"
    return "sketch"


def resolve_llm(choice: str, settings: Settings) -> str:
    if choice != "auto":
        return choice
    if settings.llm.backend != "auto":
        return settings.llm.backend
    if settings.llm.base_url or settings.openai_api_key is not None:
        return "openai"
    return "heuristic"


def _lookup(table: dict[str, float], name: str, what: str) -> float:
    if name not in table:
        raise ValueError(f"no {what} configured for backend {name!r}; known: {sorted(table)}")
    return table[name]


class MeasuredCalls(BaseModel):
    """The mean LLM request of recent completed runs, from their summary.json."""

    runs: int
    prompt_tokens: float
    completion_tokens: float
    latency_s: float
    models: list[str]


def mean_call(summaries: list[RunSummary]) -> MeasuredCalls | None:
    """Pure: the mean request over the runs that made any; None when none did."""
    used = [s.llm_usage for s in summaries if s.llm_usage.requests]
    requests = sum(u.requests for u in used)
    if not requests:
        return None
    return MeasuredCalls(
        runs=len(used),
        prompt_tokens=sum(u.prompt_tokens for u in used) / requests,
        completion_tokens=sum(u.completion_tokens for u in used) / requests,
        latency_s=sum(u.latency_s for u in used) / requests,
        models=sorted({m for u in used for m in u.models}),
    )


def recent_summaries(trace_root: Path, limit: int = RECENT_RUNS) -> list[RunSummary]:
    """The newest completed runs' summaries (unreadable ones skipped): what the estimate learns from."""
    try:
        folders = sorted(
            (entry for entry in os.scandir(trace_root) if entry.is_dir() and not entry.name.startswith(".")),
            key=lambda entry: entry.stat().st_mtime,
            reverse=True,
        )
    except FileNotFoundError:
        return []
    found: list[RunSummary] = []
    for entry in folders:
        try:
            summary = read_summary(trace_root, entry.name)
        except (TraceNotFoundError, CorruptTraceError, ValueError):
            continue
        if summary.status == "completed":
            found.append(summary)
        if len(found) == limit:
            break
    return found


@ttl_cache(maxsize=8, ttl=60)
def measured_calls(trace_root: Path) -> MeasuredCalls | None:
    """``mean_call`` over the recent runs under ``trace_root``, read at most once a minute: the
    estimate endpoint is public and cheap, and scanning the trace folder per request is not."""
    return mean_call(recent_summaries(trace_root))


def _priced_call(settings: Settings, measured: MeasuredCalls | None) -> tuple[float, float, str] | None:
    """(USD, seconds, note) of one agent call from measured tokens and the model's price, or None."""
    if measured is None:
        return None
    model = settings.llm.model
    price = price_for(model, settings.llm_prices)
    if price is None:
        return None
    usd = tokens_cost_usd(measured.prompt_tokens, measured.completion_tokens, price)
    note = (
        f"agent calls measured over the last {measured.runs} completed run(s): "
        f"{measured.prompt_tokens:.0f} prompt + {measured.completion_tokens:.0f} completion tokens and "
        f"{measured.latency_s:.1f} s per call, priced for {model} at ${price.prompt:g}/${price.completion:g} "
        "per million tokens"
    )
    return usd, measured.latency_s, note


def estimate(query: EstimateQuery, settings: Settings, measured: MeasuredCalls | None = None) -> EstimatePublic:
    """Images, time and cost. ``measured`` (from ``recent_summaries``) replaces the per-call
    constants for an LLM backend when this deployment's runs have measured its calls."""
    if query.num_scenes is not None:
        scenes = query.num_scenes
        scene_note = f"{scenes} scene(s) as requested"
    elif query.target_duration is not None:  # the planner's own rule, so the estimate and the run agree
        scenes = scenes_for_duration(query.target_duration)
        scene_note = f"{scenes} scene(s) for {query.target_duration:g} s at ~{SECONDS_PER_SCENE:g} s per scene"
    else:
        scenes = scenes_for_duration(None)
        scene_note = f"{DEFAULT_SCENES} scenes (seed 004's default storyboard); pass num_scenes or target_duration"
    generator = resolve_generator(query.generator or settings.generator.backend, settings)
    llm = resolve_llm(query.llm or settings.llm.backend, settings)
    image_price = _lookup(settings.image_price_usd, generator, "image price")
    image_s = _lookup(settings.image_seconds, generator, "image time")
    call_price = _lookup(settings.llm_call_price_usd, llm, "LLM call price")
    call_s = _lookup(settings.llm_call_seconds, llm, "LLM call time")
    priced = _priced_call(settings, measured) if llm == "openai" else None
    if priced is not None:
        call_price, call_s, call_note = priced
    else:
        call_note = f"agent calls at the configured ${call_price:g} and ~{call_s:g} s each ({llm})" + (
            "" if llm == "heuristic" else ": a constant, no measured runs of this model yet"
        )

    calls = 2 * query.max_enhancement_iterations  # cinematographer + prompt engineer per round
    attempts_max = 1 + query.max_retries
    images = scenes * query.num_variations
    images_max = images * attempts_max
    time_low = scenes * (image_s * query.num_variations + call_s * calls)
    time_max = scenes * (image_s * query.num_variations * attempts_max + call_s * calls) * HIGH_OVER_LOW
    cost = scenes * (image_price * query.num_variations + call_price * calls)
    cost_max = scenes * (image_price * query.num_variations * attempts_max + call_price * calls)
    return EstimatePublic(
        scenes=scenes,
        images=images,
        images_max=images_max,
        time_s_low=round(time_low, 2),
        time_s_high=round(time_low * HIGH_OVER_LOW, 2),
        time_s_max=round(time_max, 2),
        cost_usd=round(cost, 4),
        cost_usd_max=round(cost_max, 4),
        generator=generator,
        llm=llm,
        measured=priced is not None,
        assumptions=[
            scene_note,
            f"{query.num_variations} image(s) per attempt at ${image_price:g} and ~{image_s:g} s each ({generator})",
            f"{calls} agent call(s) per scene; {call_note}",
            f"up to {attempts_max} attempt(s) per scene; the low figures assume the first attempt passes",
            "enhancement may stop early at the approval threshold, which only lowers the figures",
        ],
    )
