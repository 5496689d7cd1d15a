"""Which scorers pick the best-of-N images, and which judge the arms afterwards.

A judge that also took part in selection favours the best-of-N arms by construction (the
pipeline kept the image that judge liked most), so the plan records that overlap and the
report states it; ``--hold-out`` removes a scorer from selection so that it judges fairly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from imageforge.scoring.base import Scorer
from imageforge.scoring.factory import MODEL_SCORERS, OFFLINE_SCORERS, SCORER_FACTORIES, resolve_auto
from imageforge.scoring.settings import ScorerSettings
from imageforge.tools.model_cache import ModelNotAvailableError
from imageforge.tools.storage import load_image

__all__ = ["ScorerPlan", "build_judges", "judge_image", "plan_scorers"]

#: The best-of-N arms: the ones a selection judge inflates.
SELECTING_ARMS = ("raw-best-of-n", "full")


@dataclass(frozen=True)
class ScorerPlan:
    selection: tuple[str, ...]
    """Scorer names the pipeline ranks variations with (the held-out ones removed)."""
    judges: tuple[str, ...]
    """Scorer names that score every arm's final image against the prompt as written."""
    held_out: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)

    @property
    def inflating(self) -> tuple[str, ...]:
        """Judges that also selected: their figures favour the best-of-N arms."""
        return tuple(name for name in self.judges if name in self.selection)


def _names(values: Sequence[str], option: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(v.strip() for v in values if v.strip()))
    unknown = [name for name in names if name not in SCORER_FACTORIES]
    if unknown:
        raise ValueError(f"{option}: unknown scorer {unknown[0]!r}; known: {', '.join(sorted(SCORER_FACTORIES))}")
    return names


def plan_scorers(settings: ScorerSettings, judges: Sequence[str] | None, hold_out: Sequence[str] = ()) -> ScorerPlan:
    """Selection scorers from the pipeline's settings minus ``hold_out``; judges as named, or
    every model scorer whose weights are on disk, or the offline stand-ins when none is."""
    held = _names(hold_out, "--hold-out")
    on_disk, _, _ = resolve_auto(settings)
    requested = tuple(settings.scorers)
    if requested == ("auto",):
        base = on_disk
    elif requested == ("offline",):
        base = OFFLINE_SCORERS
    else:
        base = _names(requested, "--scorers")
    notes = [f"--hold-out {name}: it did not select anyway" for name in held if name not in base]
    selection = tuple(name for name in base if name not in held)
    if not selection:
        raise ValueError(
            f"--hold-out {','.join(held)} leaves no scorer to select with; "
            "add one with --scorers (e.g. technical-quality)"
        )
    if judges:
        chosen = _names(judges, "--judge")
    else:
        chosen = tuple(name for name in on_disk if name in MODEL_SCORERS) or OFFLINE_SCORERS
    return ScorerPlan(selection=selection, judges=chosen, held_out=held, notes=notes)


def build_judges(names: Sequence[str], settings: ScorerSettings, device: str) -> dict[str, Scorer]:
    """Load each judge once; weights the selection also uses are shared through the model cache."""
    judges: dict[str, Scorer] = {}
    for name in names:
        try:
            judges[name] = SCORER_FACTORIES[name](settings, device)
        except (ModelNotAvailableError, OSError, ValueError) as exc:
            raise ValueError(f"--judge {name}: cannot be loaded ({exc})") from exc
    return judges


def judge_image(judges: Mapping[str, Scorer], path: str | Path, prompt: str) -> dict[str, float]:
    """Every judge's 0-100 score for one image against the prompt as the user wrote it."""
    image = load_image(path)
    return {name: round(float(judge.score([image], prompt)[0]), 4) for name, judge in judges.items()}
