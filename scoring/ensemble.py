"""The weighted ensemble: plain functions of numbers, no models.

Seed 004 weighs PickScore 0.50, CLIP-score 0.25, VQAScore 0.15 and aesthetic 0.10. A slot
whose scorer is unavailable is left out and the remaining weights are scaled up to sum 1,
so an overall score always stays on the same 0-100 scale; the report says which slots ran.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from imageforge.scoring.schemas import BASE_WEIGHTS, EnsembleReport, ScorerInfo

__all__ = ["combine", "deciding_component", "effective_weights", "ensemble_report", "rank"]


def effective_weights(available: Iterable[str], base: Mapping[str, float] = BASE_WEIGHTS) -> dict[str, float]:
    """The base weights of the ``available`` slots, renormalised to sum 1, in ``base`` order.

    >>> effective_weights(["clip", "aesthetic"])
    {'clip': 0.7142857142857143, 'aesthetic': 0.2857142857142857}
    """
    slots = set(available)
    unknown = sorted(slots - set(base))
    if unknown:
        raise ValueError(f"`available` has unknown slots {unknown!r}; known slots are {list(base)!r}.")
    if not slots:
        raise ValueError("`available` must name at least one slot, got none.")
    total = sum(base[slot] for slot in slots)
    if total <= 0:
        raise ValueError(f"`base` weights of the available slots {sorted(slots)!r} sum to {total!r}; need > 0.")
    return {slot: weight / total for slot, weight in base.items() if slot in slots}


def combine(components: Mapping[str, Sequence[float]], weights: Mapping[str, float]) -> list[float]:
    """Weighted overall score per image, 0-100.

    ``components`` maps each slot to one 0-100 score per image; ``weights`` must cover
    exactly those slots. The sum is divided by the weights' total, so weights that do not
    sum to 1 still give a 0-100 mean.
    """
    if set(components) != set(weights):
        raise ValueError(
            f"`components` slots {sorted(components)!r} and `weights` slots {sorted(weights)!r} must be the same."
        )
    if not components:
        raise ValueError("`components` must hold at least one slot, got none.")
    lengths = {slot: len(values) for slot, values in components.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"`components` must score the same number of images per slot, got {lengths!r}.")
    total = sum(weights.values())
    if total <= 0 or any(w < 0 for w in weights.values()):
        raise ValueError(f"`weights` must be non-negative with a positive sum, got {dict(weights)!r}.")
    for slot, values in components.items():
        bad = [v for v in values if not (0.0 <= v <= 100.0)]
        if bad:
            raise ValueError(f"`components[{slot!r}]` must be within 0-100, got {bad!r}.")
    count = next(iter(lengths.values()))
    return [
        min(100.0, max(0.0, sum(components[slot][i] * weights[slot] for slot in weights) / total)) for i in range(count)
    ]


def rank(overalls: Sequence[float]) -> list[int]:
    """1-based rank per position, 1 = highest; equal scores rank by lower index first.

    >>> rank([70.0, 90.0, 70.0])
    [2, 1, 3]
    """
    if any(math.isnan(v) for v in overalls):
        raise ValueError(f"`overalls` must not contain NaN, got {list(overalls)!r}.")
    order = sorted(range(len(overalls)), key=lambda i: (-overalls[i], i))
    ranks = [0] * len(overalls)
    for position, index in enumerate(order, start=1):
        ranks[index] = position
    return ranks


def deciding_component(
    winner: Mapping[str, float], runner_up: Mapping[str, float], weights: Mapping[str, float]
) -> str:
    """The slot that contributes most to the winner's weighted margin over the runner-up.

    Contribution is ``weight * (winner - runner_up)``; ties go to the heavier slot, then to
    the slot listed first in ``weights``. Used in selected_best.txt ("won on pickscore").
    """
    missing = sorted(slot for slot in weights if slot not in winner or slot not in runner_up)
    if missing:
        raise ValueError(f"`winner` and `runner_up` must score every weighted slot; missing {missing!r}.")
    if not weights:
        raise ValueError("`weights` must hold at least one slot, got none.")
    order = list(weights)
    return max(
        order,
        key=lambda slot: (
            weights[slot] * (winner[slot] - runner_up[slot]),
            weights[slot],
            -order.index(slot),
        ),
    )


def ensemble_report(scorers: list[ScorerInfo], missing: dict[str, str]) -> EnsembleReport:
    """What the trace records about scoring: who served each slot, what was left out and
    why, and the renormalised weights actually applied."""
    served = [info.slot for info in scorers]
    doubled = sorted({slot for slot in served if served.count(slot) > 1})
    if doubled:
        raise ValueError(f"`scorers` must serve each slot once; {doubled!r} served more than once.")
    overlap = sorted(set(served) & set(missing))
    if overlap:
        raise ValueError(f"`missing` names slots {overlap!r} that `scorers` serve.")
    return EnsembleReport(scorers=list(scorers), missing=dict(missing), effective_weights=effective_weights(served))
