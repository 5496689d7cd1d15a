"""Test factories: offline backends and run contexts (imported by tests and conftest)."""

from __future__ import annotations

from imageforge.graph.context import BackendSettings, Context, GenerationSettings
from imageforge.graph.services import Services
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
