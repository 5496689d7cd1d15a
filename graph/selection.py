"""Pure decisions of the pipeline: which prompt version to keep, whether an attempt passes,
which image wins and how to say why. No I/O, so each is tested with hand-written values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from imageforge.agents.schemas import Iteration
from imageforge.scoring.ensemble import deciding_component
from imageforge.scoring.schemas import VariationScore
from imageforge.traces.schemas import Attempt, SceneStatus


def best_iteration(iterations: Sequence[Iteration]) -> int:
    """1-based index of the highest-scoring iteration; on a tie the later one, which has
    answered more critique. The loop keeps this one, not merely the last."""
    if not iterations:
        raise ValueError("`iterations` must not be empty")
    best = max(range(len(iterations)), key=lambda i: (iterations[i].critique.overall, i))
    return best + 1


def combined_consistency(reference: float, anchor: float | None) -> float:
    """The consistency an attempt is validated on, when the storyboard's anchor (the user's
    image or scene 1's winner) was a second reference beside the chosen one: the lower of the
    two similarities. A variation must look like the reference it follows *and* must not have
    drifted from the anchor; scene-to-scene similarity alone lets a long storyboard drift a
    little each scene until it no longer resembles its start. Without an anchor (it is the
    chosen reference itself, or there is none) the reference's similarity alone."""
    return reference if anchor is None else min(reference, anchor)


def validate(
    best: VariationScore,
    *,
    quality_threshold: float,
    consistency_threshold: float,
) -> tuple[bool, str, list[str]]:
    """Seed 003's validation of an attempt's best image: (passed, reason, failure reasons).

    Consistency is checked only when the attempt had a reference (``best.consistency`` is
    not None) and the threshold is above 0.
    """
    failures: list[str] = []
    parts = [f"Quality: {best.overall:.1f}/{quality_threshold:g}"]
    if best.overall < quality_threshold:
        failures.append("Quality threshold not met")
    if best.consistency is not None and consistency_threshold > 0:
        parts.append(f"Consistency: {best.consistency:.1f}/{consistency_threshold:g}")
        if best.consistency < consistency_threshold:
            failures.append("Consistency validation failed")
    verdict = "Failed validation" if failures else "Passed validation"
    return not failures, f"{verdict} - {', '.join(parts)}", failures


def _attempt_key(attempt: Attempt) -> tuple[float, float, int]:
    consistency = attempt.consistency if attempt.consistency is not None else 100.0
    return (attempt.quality, consistency, -attempt.attempt)


def choose_winner(attempts: Sequence[Attempt], *, strict: bool) -> tuple[Attempt | None, SceneStatus]:
    """The attempt whose best image becomes the scene's winner.

    The first attempt that passed wins (later attempts are not run once one passes). When
    none passed: lenient mode keeps the attempt with the best quality (then consistency),
    strict mode has no winner.
    """
    if not attempts:
        raise ValueError("`attempts` must not be empty")
    passed = [a for a in attempts if a.passed]
    if passed:
        return passed[0], "passed"
    if strict:
        return None, "failed"
    return max(attempts, key=_attempt_key), "accepted_with_warning"


def explain_winner(attempt: Attempt, weights: Mapping[str, float], status: SceneStatus) -> str:
    """selected_best.txt: the winner's overall, the runner-up's margin and the deciding component."""
    ranked = sorted(attempt.variations, key=lambda v: v.rank)
    winner = ranked[0]
    lines = [
        f"Selected: image_{winner.index}.png (attempt {attempt.attempt}, seed {winner.seed})",
        f"Overall: {winner.overall:.1f} / 100 "
        + "("
        + ", ".join(
            f"{slot} {value:.1f} x {weights[slot]:.2f}" for slot, value in winner.components.items() if slot in weights
        )
        + ")",
    ]
    if winner.consistency is not None:
        lines.append(
            f"Consistency with reference {attempt.reference.id if attempt.reference else '-'}: "
            f"{winner.consistency:.1f} / 100"
        )
        if winner.consistency_anchor is not None and winner.consistency_reference is not None:
            lines[-1] += (
                f" (the lower of {winner.consistency_reference:.1f} with the reference and "
                f"{winner.consistency_anchor:.1f} with the anchor {attempt.anchor.id if attempt.anchor else '-'})"
            )
    if len(ranked) > 1:
        runner = ranked[1]
        slot = deciding_component(winner.components, runner.components, weights)
        margin = winner.overall - runner.overall
        lead = weights[slot] * (winner.components.get(slot, 0.0) - runner.components.get(slot, 0.0))
        lines.append(
            f"Runner-up: image_{runner.index}.png at {runner.overall:.1f}, a margin of {margin:.1f} points; "
            f"the deciding component was {slot} ({winner.components.get(slot, 0.0):.1f} vs "
            f"{runner.components.get(slot, 0.0):.1f}, worth {lead:+.1f} weighted points)."
        )
    else:
        lines.append("Only one variation was generated, so it won unopposed.")
    if status == "passed":
        lines.append(f"Validation: {attempt.reason}.")
    else:
        lines.append(f"Warning: no attempt passed validation; lenient mode kept the best attempt ({attempt.reason}).")
    return "\n".join(lines) + "\n"


def quality_scores_document(attempts: Sequence[Attempt], weights: Mapping[str, float], winner: Attempt | None) -> dict:
    """quality_scores.json: every variation of every attempt with its rank and reference."""
    return {
        "effective_weights": dict(weights),
        "winner": None if winner is None else {"attempt": winner.attempt, "index": winner.best_index},
        "attempts": [
            {
                "attempt": a.attempt,
                "reference": None if a.reference is None else a.reference.model_dump(mode="json"),
                "anchor": None if a.anchor is None else a.anchor.model_dump(mode="json"),
                "passed": a.passed,
                "reason": a.reason,
                "size": a.size,
                "variations": [v.model_dump(mode="json") for v in sorted(a.variations, key=lambda v: v.rank)],
            }
            for a in attempts
        ],
    }
