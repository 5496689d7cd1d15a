"""Images, time and cost of a storyboard before it runs.

The model is seed 004's table: at 4 variations and 4 enhancement iterations a scene costs
about $0.10 and takes about 60-90 s with hosted backends. A scene's time and cost are its
images (variations x attempts) at the generator's price plus its agent calls (two per
enhancement iteration) at the LLM's price, so both scale with the settings. Prices and
per-call seconds are deployment settings, keyed by backend name.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from imageforge.agents.heuristics import DEFAULT_SCENES, MAX_SCENES, SECONDS_PER_SCENE, scenes_for_duration
from imageforge.agents.settings import LLMBackend
from imageforge.api.core.config import Settings
from imageforge.api.models.operations import EstimatePublic
from imageforge.tools.settings import GeneratorBackend

__all__ = ["EstimateQuery", "estimate", "resolve_generator", "resolve_llm"]

#: Seed 004's spread: ~60 s at best, ~90 s typically, for the same work.
HIGH_OVER_LOW = 1.5


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


def estimate(query: EstimateQuery, settings: Settings) -> EstimatePublic:
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
        assumptions=[
            scene_note,
            f"{query.num_variations} image(s) per attempt at ${image_price:g} and ~{image_s:g} s each ({generator})",
            f"{calls} agent call(s) per scene at ${call_price:g} and ~{call_s:g} s each ({llm})",
            f"up to {attempts_max} attempt(s) per scene; the low figures assume the first attempt passes",
            "enhancement may stop early at the approval threshold, which only lowers the figures",
        ],
    )
