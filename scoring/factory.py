"""Choosing the scorers from the backend settings.

``ScorerSettings.scorers`` is either ``("auto",)``, ``("offline",)`` or a list of scorer
names. Each name maps to a factory in ``SCORER_FACTORIES``; the consistency scorer comes
from ``CONSISTENCY_FACTORIES``. Slots no scorer serves are recorded with the reason, so the
ensemble renormalises and the trace says what was left out. Model-backed scorers (PickScore,
CLIP-score, VQAScore, the LAION aesthetic head) register themselves in the same tables and
extend ``resolve_auto`` to pick them when their weights are on disk.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from PIL import Image

from imageforge.scoring.base import ConsistencyScorer, Scorer
from imageforge.scoring.consistency import HistogramConsistencyScorer
from imageforge.scoring.ensemble import ensemble_report
from imageforge.scoring.schemas import BASE_WEIGHTS, EnsembleReport, ScorerInfo
from imageforge.scoring.settings import ScorerSettings
from imageforge.scoring.technical import TechnicalQualityScorer
from imageforge.tools.batching import AdaptiveBatch, run_adaptive
from imageforge.tools.model_cache import ModelNotAvailableError

if TYPE_CHECKING:  # the module imports torch; the factories load it only when called
    from imageforge.scoring.embedding_consistency import EmbeddingKind

__all__ = [
    "CONSISTENCY_FACTORIES",
    "OFFLINE_REASON",
    "SCORER_FACTORIES",
    "ScorerSet",
    "build_scorers",
    "resolve_auto",
]

ScorerFactory = Callable[[ScorerSettings, str], Scorer]
"""(scorer settings, device) -> a loaded scorer."""
ConsistencyFactory = Callable[[ScorerSettings, str], ConsistencyScorer]


# Model-backed scorers. Each imports torch/transformers only when called, loads once per
# process through tools.model_cache, and reads weights from a local path or the Hugging
# Face cache only (ModelNotAvailableError otherwise); nothing here downloads. A model id set
# in ScorerSettings replaces the published default.
def _pickscore(settings: ScorerSettings, device: str) -> Scorer:
    from imageforge.scoring.pickscore import PICKSCORE_MODEL, load_pickscore_scorer

    return load_pickscore_scorer(
        model=settings.pickscore_model or PICKSCORE_MODEL, device=device, batch_size=settings.batch_size
    )


def _clip_score(settings: ScorerSettings, device: str) -> Scorer:
    from imageforge.scoring.clipscore import CLIPSCORE_MODEL, load_clipscore_scorer

    return load_clipscore_scorer(
        model=settings.clip_model or CLIPSCORE_MODEL, device=device, batch_size=settings.batch_size
    )


def _laion_aesthetic(settings: ScorerSettings, device: str) -> Scorer:
    from imageforge.scoring.aesthetic import AESTHETIC_CLIP_MODEL, load_aesthetic_scorer
    from imageforge.tools.model_store import local_model_path

    head = local_model_path("aesthetic")  # the .pth file, wherever `models pull` put it
    return load_aesthetic_scorer(
        head_path=head,
        clip_model=settings.clip_model or AESTHETIC_CLIP_MODEL,
        device=device,
        batch_size=settings.batch_size,
    )


def _vqascore(settings: ScorerSettings, device: str) -> Scorer:
    from imageforge.scoring.vqascore import DEFAULT_VQA_MODEL, load_vqa_scorer

    return load_vqa_scorer(model=settings.vqa_model or DEFAULT_VQA_MODEL, device=device)


def _embedding_consistency(kind: EmbeddingKind) -> ConsistencyFactory:
    def build(settings: ScorerSettings, device: str) -> ConsistencyScorer:
        from imageforge.scoring.embedding_consistency import (
            DEFAULT_CONSISTENCY_MODEL,
            load_embedding_consistency_scorer,
        )

        model = settings.consistency_model or (settings.clip_model if kind == "clip" else None)
        if kind == "dinov2" and model is None:
            raise ValueError("`consistency` 'dinov2' needs --consistency-model (a DINOv2 hub id or folder)")
        return load_embedding_consistency_scorer(
            model=model or DEFAULT_CONSISTENCY_MODEL,
            kind=kind,
            device=device,
            batch_size=settings.batch_size,
        )

    return build


#: Scorer name -> factory for the ensemble's slots.
SCORER_FACTORIES: dict[str, ScorerFactory] = {
    "technical-quality": lambda settings, device: TechnicalQualityScorer(),
    "pickscore": _pickscore,
    "clip-score": _clip_score,
    "laion-aesthetic": _laion_aesthetic,
    "vqascore": _vqascore,
}
#: Consistency scorer name -> factory.
CONSISTENCY_FACTORIES: dict[str, ConsistencyFactory] = {
    "histogram-ssim": lambda settings, device: HistogramConsistencyScorer(),
    "clip-consistency": _embedding_consistency("clip"),
    "dinov2-consistency": _embedding_consistency("dinov2"),
}
#: ScorerSettings.consistency -> consistency scorer name.
CONSISTENCY_CHOICES = {"clip": "clip-consistency", "dinov2": "dinov2-consistency", "histogram": "histogram-ssim"}


def _required(name: str, settings: ScorerSettings) -> tuple[str, ...]:
    """The model sets (or configured model ids) a model scorer needs on disk."""
    configured = {
        "pickscore": settings.pickscore_model,
        "clip-score": settings.clip_model,
        "vqascore": settings.vqa_model,
        "laion-aesthetic": settings.clip_model,
    }.get(name)
    if name == "laion-aesthetic":
        return (configured or "clip-l", "aesthetic")
    return (configured,) if configured else MODEL_SCORERS[name][1]


#: Model scorer -> (its slot, the `imageforge models pull` sets it needs). The scorers'
#: default model ids are the catalogue's repositories (tools.model_store.CATALOGUE).
MODEL_SCORERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "pickscore": ("pickscore", ("pickscore",)),
    "clip-score": ("clip", ("clip-l",)),
    "vqascore": ("vqa", ("vqa",)),
    "laion-aesthetic": ("aesthetic", ("clip-l", "aesthetic")),
}
MODEL_CONSISTENCY: tuple[str, tuple[str, ...]] = ("clip-consistency", ("clip-l",))
#: What ``offline`` (and ``auto`` with nothing on disk) runs.
OFFLINE_SCORERS: tuple[str, ...] = ("technical-quality",)
OFFLINE_CONSISTENCY = "histogram-ssim"
OFFLINE_REASON = "no weights on disk (offline)"
NOT_REQUESTED_REASON = "not in the requested scorers"
MODES = ("auto", "offline")


@dataclass
class ScorerSet:
    """The scorers of one run: one per served slot, the consistency scorer, and the slots
    left out with the reason for each."""

    scorers: list[Scorer]
    consistency: ConsistencyScorer
    missing: dict[str, str] = field(default_factory=dict)
    batches: dict[str, AdaptiveBatch] = field(default_factory=dict, repr=False)

    def score(self, scorer: Scorer, images: list[Image.Image], prompt: str) -> list[float]:
        """``scorer`` over ``images`` in chunks that fit on its device.

        A scorer that runs out of memory retries the rest with half the chunk instead of
        dropping out, so every attempt of a scene is ranked under the same weights; the
        chunk grows back after successes (tools.batching). Scores are per image, so
        chunking does not change them.
        """
        batch = self.batches.setdefault(scorer.slot, AdaptiveBatch())
        return run_adaptive(lambda chunk: [float(v) for v in scorer.score(list(chunk), prompt)], images, batch)

    def consistency_scores(self, images: list[Image.Image], references: list[Image.Image]) -> list[float]:
        """The consistency scorer over ``images`` in chunks that fit, as ``score``."""
        batch = self.batches.setdefault("consistency", AdaptiveBatch())
        return run_adaptive(
            lambda chunk: [float(v) for v in self.consistency.score(list(chunk), references)], images, batch
        )

    def infos(self) -> list[ScorerInfo]:
        return [
            ScorerInfo(
                slot=s.slot,
                name=s.name,
                model=s.model,
                stand_in=bool(getattr(s, "stand_in", False)),
            )
            for s in self.scorers
        ]

    def report(self) -> EnsembleReport:
        """The trace's account of scoring, with the renormalised weights."""
        return ensemble_report(self.infos(), self.missing)


def resolve_auto(settings: ScorerSettings) -> tuple[tuple[str, ...], str, dict[str, str]]:
    """What ``auto`` stands for: each model scorer whose weights are on disk (checked without
    the network), the offline stand-in for the aesthetic slot when the LAION head is not,
    and, per slot left out, why. Consistency is CLIP's when CLIP ViT-L/14 is on disk."""
    from imageforge.tools.model_store import is_available

    names: list[str] = []
    reasons: dict[str, str] = {}
    for name, (slot, _) in MODEL_SCORERS.items():
        absent = [model_set for model_set in _required(name, settings) if not is_available(model_set)]
        if absent:
            reasons[slot] = f"weights not on disk (`imageforge models pull {' '.join(absent)}`)"
        else:
            names.append(name)
    if "aesthetic" in reasons:
        names.append("technical-quality")
        del reasons["aesthetic"]
    return tuple(names), _consistency_name(settings), reasons


def _consistency_name(settings: ScorerSettings) -> str:
    """The configured consistency scorer; under 'auto', CLIP's when its model is on disk."""
    from imageforge.tools.model_store import is_available

    if settings.consistency != "auto":
        return CONSISTENCY_CHOICES[settings.consistency]
    model = settings.consistency_model or settings.clip_model or MODEL_CONSISTENCY[1][0]
    return MODEL_CONSISTENCY[0] if is_available(model) else OFFLINE_CONSISTENCY


def _describe(scorer_set: ScorerSet) -> str:
    served = ", ".join(
        f"{s.name} for {s.slot}{' (offline stand-in)' if getattr(s, 'stand_in', False) else ''}"
        for s in scorer_set.scorers
    )
    consistency = scorer_set.consistency.name
    if getattr(scorer_set.consistency, "stand_in", False):
        consistency += " (offline stand-in)"
    line = f"Scorers: {served}; consistency: {consistency}."
    if scorer_set.missing:
        reasons = sorted(set(scorer_set.missing.values()))
        left_out = ", ".join(scorer_set.missing)
        line += f" Left out: {left_out} ({'; '.join(reasons)}); weights renormalised over the rest."
    if any(getattr(s, "stand_in", False) for s in scorer_set.scorers):
        line += (
            " Install weights with `imageforge models pull scorers` or pass --scorers with model "
            "scorers for real preference scores."
        )
    return line


def build_scorers(settings: ScorerSettings, device: str = "auto") -> tuple[ScorerSet, str]:
    """Build the configured scorers and say in one line which run and what is left out."""
    requested = tuple(settings.scorers)
    if not requested:
        raise ValueError("`scorers` must name at least one scorer, or 'auto' / 'offline'.")
    modes = [name for name in requested if name in MODES]
    if modes and len(requested) > 1:
        raise ValueError(f"`scorers` takes 'auto' or 'offline' alone, got {list(requested)!r}.")
    reasons: dict[str, str] = {}
    if modes == ["auto"]:
        names, consistency_name, reasons = resolve_auto(settings)
    elif modes == ["offline"]:
        names, consistency_name = OFFLINE_SCORERS, OFFLINE_CONSISTENCY
    else:
        names, consistency_name = requested, _consistency_name(settings)
    unknown = [name for name in names if name not in SCORER_FACTORIES]
    if unknown:
        known = sorted(SCORER_FACTORIES) + list(MODES)
        raise ValueError(f"`scorers` has unknown or unavailable names {unknown!r}; available: {known!r}.")

    scorers = []
    for name in dict.fromkeys(names):
        try:
            scorers.append(SCORER_FACTORIES[name](settings, device))
        except (ModelNotAvailableError, OSError, ValueError) as exc:
            if modes != ["auto"]:  # named explicitly: the user should see why it cannot run
                raise ValueError(f"`scorers` name {name!r} cannot be loaded: {exc}") from exc
            reasons[MODEL_SCORERS[name][0]] = f"{name} could not be loaded: {exc}"
    slots = [scorer.slot for scorer in scorers]
    doubled = sorted({slot for slot in slots if slots.count(slot) > 1})
    if doubled:
        raise ValueError(f"`scorers` must serve each slot once; {doubled!r} would be served twice by {list(names)!r}.")
    reason = OFFLINE_REASON if modes else NOT_REQUESTED_REASON
    missing = {slot: reasons.get(slot, reason) for slot in BASE_WEIGHTS if slot not in slots}
    try:
        consistency = CONSISTENCY_FACTORIES[consistency_name](settings, device)
    except (ModelNotAvailableError, OSError, ValueError) as exc:
        if settings.consistency != "auto":
            raise ValueError(f"`consistency` {settings.consistency!r} cannot be loaded: {exc}") from exc
        consistency = CONSISTENCY_FACTORIES[OFFLINE_CONSISTENCY](settings, device)
    scorer_set = ScorerSet(scorers=scorers, consistency=consistency, missing=missing)
    return scorer_set, _describe(scorer_set)
