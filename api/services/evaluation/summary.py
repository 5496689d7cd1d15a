"""summary.json: per judge, each arm's mean with its interval, paired differences against the
raw arm, win rates and a per-category table; per arm, what it cost.

Only prompts where every arm finished and was judged enter the figures, so each comparison
is over the same prompts; the summary says how many were left out and why.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from imageforge.api.services.evaluation.store import ARMS, Arm, EvalConfig, EvalRecord, latest
from imageforge.scoring.factory import OFFLINE_SCORERS
from imageforge.scoring.statistics import bootstrap_mean, paired_differences, win_rate

__all__ = ["BASELINE", "caveats", "summarize"]

BASELINE: Arm = "raw"
ARM_DESCRIPTIONS = {
    "raw": "the prompt as written, one image",
    "raw-best-of-n": "the prompt as written, N images, the selection scorers pick one",
    "enhanced": "the enhancement loop's final prompt, one image",
    "full": "the whole scene pipeline: enhanced prompt, best-of-N, validation and retries",
}


def _complete(config: EvalConfig, records: dict[tuple[str, str], EvalRecord], judge: str) -> list[str]:
    """Prompt ids whose every arm has a score from ``judge``."""
    return [
        item.id
        for item in config.prompts
        if all(
            (r := records.get((item.id, arm))) is not None and r.status == "ok" and judge in r.judges for arm in ARMS
        )
    ]


def _judge_figures(
    config: EvalConfig, records: dict[tuple[str, str], EvalRecord], judge: str, seed: int
) -> dict[str, Any]:
    ids = _complete(config, records, judge)
    figures: dict[str, Any] = {"n": len(ids), "arms": {}, "vs_raw": {}, "categories": {}}
    if not ids:
        return figures
    scores = {arm: [records[(pid, arm)].judges[judge] for pid in ids] for arm in ARMS}
    resamples = config.resamples
    for arm in ARMS:
        figures["arms"][arm] = bootstrap_mean(scores[arm], resamples=resamples, seed=seed).as_dict()
    for arm in ARMS:
        if arm == BASELINE:
            continue
        differences = paired_differences(scores[arm], scores[BASELINE])
        figures["vs_raw"][arm] = {
            "difference": bootstrap_mean(differences, resamples=resamples, seed=seed).as_dict(),
            "win_rate": win_rate(scores[arm], scores[BASELINE]).as_dict(),
        }
    category_of = {item.id: item.category for item in config.prompts}
    for category in sorted({category_of[pid] for pid in ids}):
        members = [i for i, pid in enumerate(ids) if category_of[pid] == category]
        cell: dict[str, Any] = {"n": len(members), "means": {}, "vs_raw": {}}
        for arm in ARMS:
            cell["means"][arm] = sum(scores[arm][i] for i in members) / len(members)
            if arm != BASELINE:
                in_category = [scores[arm][i] - scores[BASELINE][i] for i in members]
                cell["vs_raw"][arm] = bootstrap_mean(in_category, resamples=resamples, seed=seed).as_dict()
        figures["categories"][category] = cell
    return figures


def _cost(records: Iterable[EvalRecord]) -> dict[str, dict[str, float | int]]:
    cost: dict[str, dict[str, float | int]] = {
        arm: {"wall_s": 0.0, "images": 0, "llm_requests": 0, "llm_tokens": 0, "ok": 0, "failed": 0} for arm in ARMS
    }
    for record in records:
        cell = cost[record.arm]
        cell["wall_s"] = round(float(cell["wall_s"]) + record.wall_s, 3)
        cell["images"] = int(cell["images"]) + record.images_generated
        cell["llm_requests"] = int(cell["llm_requests"]) + record.llm_requests
        cell["llm_tokens"] = int(cell["llm_tokens"]) + record.llm_prompt_tokens + record.llm_completion_tokens
        cell["ok" if record.status == "ok" else "failed"] = int(cell["ok" if record.status == "ok" else "failed"]) + 1
    return cost


def caveats(config: EvalConfig) -> list[str]:
    """What a reader must know before trusting any figure: stand-ins and judge overlap."""
    lines = []
    generator = config.resolved.get("generator", config.backends.generator.backend)
    stand_in_judges = [name for name in config.judges if name in OFFLINE_SCORERS]
    if generator == "sketch" or stand_in_judges:
        parts = []
        if generator == "sketch":
            parts.append("the images come from the offline sketch generator (composition frames, not pictures)")
        if stand_in_judges:
            parts.append(
                f"{', '.join(stand_in_judges)} is an offline stand-in that rates exposure, contrast and sharpness, "
                "not whether the image shows the prompt"
            )
        lines.append(
            "Stand-in figures: "
            + "; ".join(parts)
            + ". These figures are no evidence about image quality; they only show that the evaluation runs end "
            "to end. Run it with a diffusion model and model judges (README, 'Evaluating quality') for real figures."
        )
    if config.resolved.get("llm", "heuristic") == "heuristic":
        lines.append(
            "The enhancement loop used the offline heuristic agents (rule-based), not an LLM: the enhanced arms "
            "measure those rules."
        )
    inflating = [name for name in config.judges if name in config.selection]
    if inflating:
        lines.append(
            f"Judge{'s' if len(inflating) > 1 else ''} {', '.join(inflating)} also selected the best-of-N images, "
            "so the raw-best-of-n and full arms are inflated on "
            f"{'them' if len(inflating) > 1 else 'it'} (the pipeline kept the image that judge liked most). "
            f"Hold a judge out of selection with --hold-out {inflating[0]} for a fair figure."
        )
    if config.held_out:
        lines.append(f"Held out of selection: {', '.join(config.held_out)} (a fair judge of the best-of-N arms).")
    return lines


def summarize(config: EvalConfig, records: list[EvalRecord], *, seed: int = 0) -> dict[str, Any]:
    """The whole summary.json document; ``seed`` fixes every bootstrap interval."""
    by_key = latest(records)
    failures = [{"prompt_id": r.prompt_id, "arm": r.arm, "error": r.error} for r in by_key.values() if r.status != "ok"]
    return {
        "eval_id": config.eval_id,
        "prompt_source": config.prompt_source,
        "prompts": len(config.prompts),
        "arms": {arm: ARM_DESCRIPTIONS[arm] for arm in ARMS},
        "baseline": BASELINE,
        "variations": config.settings.num_variations,
        "judges": [
            {"name": name, "stand_in": name in OFFLINE_SCORERS, "selected": name in config.selection}
            for name in config.judges
        ],
        "selection": config.selection,
        "held_out": config.held_out,
        "backends": config.resolved,
        "caveats": caveats(config),
        "bootstrap": {"resamples": config.resamples, "seed": seed, "confidence": 0.95, "method": "percentile"},
        "results": {judge: _judge_figures(config, by_key, judge, seed) for judge in config.judges},
        "cost": _cost(by_key.values()),
        "finished": sum(1 for r in by_key.values() if r.status == "ok"),
        "expected": len(config.prompts) * len(ARMS),
        "failures": failures,
    }
