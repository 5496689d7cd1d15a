"""Test factories: offline backends, run contexts and the enhancement loop's replies (imported
by tests and conftest)."""

from __future__ import annotations

from pathlib import Path

from fakes import ScriptedChatModel

from imageforge.agents.schemas import ConsistencyMarkers, CritiqueDraft, DimensionScores, EnhancedPrompt, ScenePlan
from imageforge.graph.context import BackendSettings, Context, GenerationSettings
from imageforge.graph.enhancement import enhancement_graph
from imageforge.graph.services import Services
from imageforge.graph.state import EnhanceInput
from imageforge.scoring.consistency import HistogramConsistencyScorer
from imageforge.scoring.factory import ScorerSet
from imageforge.scoring.settings import ScorerSettings
from imageforge.scoring.technical import TechnicalQualityScorer
from imageforge.tools.sketch import SketchGenerator

OFFLINE_MISSING = {slot: "no weights on disk (offline)" for slot in ("pickscore", "clip", "vqa")}


def offline_services(llm=None) -> Services:
    """Heuristic (or the given) chat model, the sketch generator and the stand-in scorers."""
    scorers = ScorerSet(
        scorers=[TechnicalQualityScorer()],
        consistency=HistogramConsistencyScorer(),
        missing=dict(OFFLINE_MISSING),
    )
    return Services(llm=llm, generator=SketchGenerator(), scorers=scorers, notes=["offline test backends"])


def make_context(tmp_path, *, llm=None, **settings) -> Context:
    """A fast run context: small images and few variations unless a test asks otherwise."""
    defaults = {"num_variations": 2, "resolution": 96, "seed": 7}
    return Context(
        settings=GenerationSettings(**{**defaults, **settings}),
        backends=BackendSettings(llm="heuristic", generator="sketch", scoring=ScorerSettings(scorers=("offline",))),
        trace_root=str(tmp_path / "traces"),
        services=offline_services(llm),
    )


# The enhancement loop's LLM replies and a run of its graph ----------------------------------
def enhanced_prompt(text: str) -> EnhancedPrompt:
    """A cinematographer's reply: ``text`` with a full camera and lighting spec."""
    return EnhancedPrompt(
        prompt=f"{text}, medium close-up, 85mm f/1.8, window light from the left, 4500K.",
        shot_type="medium close-up",
        camera_angle="eye-level",
        lens="85mm",
        aperture="f/1.8",
        lighting="window light from the left",
        color_temperature_k=4500,
        composition="rule of thirds",
    )


def critique(score: float, *, suggestions: tuple[str, ...] = (), subject_kept: bool = True) -> CritiqueDraft:
    """A prompt engineer's reply scoring every dimension ``score``."""
    scores = DimensionScores(
        completeness=score, specificity=score, professionalism=score, cinematography=score, brand_alignment=score
    )
    return CritiqueDraft(
        scores=scores, critique=f"scored {score}", suggestions=list(suggestions), subject_kept=subject_kept
    )


async def run_enhancement(tmp_path, scene: ScenePlan, markers: ConsistencyMarkers, replies: list, **settings):
    """One scene through the enhancement graph on a scripted chat model: (its result, its trace folder)."""
    context = make_context(tmp_path, llm=ScriptedChatModel.from_replies(replies), **settings)
    out = await enhancement_graph.ainvoke(
        EnhanceInput(generation_id="g", scene=scene, markers=markers), context=context
    )
    return out["enhancements"][scene.scene_number], Path(context.trace_root) / "g" / f"scene_{scene.scene_number}"
