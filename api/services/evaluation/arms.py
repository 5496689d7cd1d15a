"""The four arms of `imageforge eval`, each run through the graph the product itself runs.

- full: ``run_storyboard`` with the prompt as the one explicit scene (enhancement loop,
  best-of-N, validation, retries), exactly what `imageforge generate --scene` does.
- enhanced: the scene subgraph on the full arm's enhancement result, one variation, no
  retries: the enhanced prompt alone, without selection.
- raw-best-of-n: the scene subgraph on the prompt as written, N variations ranked by the
  selection scorers, no retries.
- raw: the same with one variation.

Every arm of a prompt uses that prompt's base seed, and variation seeds are prefixes of one
list (tools.seeds), so the raw arm's image is raw-best-of-n's first candidate and the
enhanced arm's is the full arm's first. The enhancement runs once per prompt, in the full
arm; the enhanced arm generates from the result the full arm's record carries.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

from imageforge.agents.schemas import (
    Critique,
    DimensionScores,
    EnhancedPrompt,
    EnhancementResult,
    Iteration,
    ScenePlan,
)
from imageforge.agents.usage import usage_totals
from imageforge.api.services.evaluation.judges import judge_image
from imageforge.api.services.evaluation.prompts import EvalPrompt
from imageforge.api.services.evaluation.store import Arm, EvalRecord
from imageforge.graph.context import Context
from imageforge.graph.run import StoryboardRequest, run_storyboard
from imageforge.graph.scene import scene_graph
from imageforge.graph.state import SceneInput
from imageforge.scoring.base import Scorer
from imageforge.tools.seeds import derive_seeds
from imageforge.traces.schemas import SceneResult

__all__ = ["as_written", "generation_id", "prompt_seed", "run_arm"]

#: Order of execution: the enhanced arm needs the full arm's enhancement.
RUN_ORDER: tuple[Arm, ...] = ("full", "enhanced", "raw", "raw-best-of-n")


def generation_id(item: EvalPrompt, arm: Arm) -> str:
    return f"{item.id}-{arm}"


def prompt_seed(eval_seed: int, index: int) -> int:
    """The base seed of the prompt at ``index`` (0-based), shared by all its arms."""
    return derive_seeds(eval_seed, index + 1, 1, 1)[0]


def as_written(prompt: str) -> EnhancementResult:
    """An enhancement result that keeps the prompt unchanged, so the scene subgraph generates
    from it directly. Its one iteration says so instead of inventing camera decisions."""
    kept = "as written (not enhanced)"
    enhanced = EnhancedPrompt(
        prompt=prompt,
        shot_type=kept,
        camera_angle=kept,
        lens=kept,
        aperture=kept,
        lighting=kept,
        color_temperature_k=5600,
        composition=kept,
        addressed="raw arm of `imageforge eval`: the prompt as the user wrote it",
    )
    critique = Critique(
        scores=DimensionScores(completeness=0, specificity=0, professionalism=0, cinematography=0, brand_alignment=0),
        critique="Not reviewed: the raw arms of `imageforge eval` generate from the prompt as written.",
    )
    return EnhancementResult(
        scene_number=1,
        original_prompt=prompt,
        iterations=[Iteration(iteration=1, enhanced=enhanced, critique=critique)],
        best_iteration=1,
        approval_threshold=0.0,
        stop_reason="approved",
    )


def _images_generated(result: SceneResult) -> int:
    return sum(len(attempt.variations) for attempt in result.attempts)


def _relative(path: str | None, eval_dir: Path) -> str | None:
    if path is None:
        return None
    try:
        return str(Path(path).resolve().relative_to(eval_dir.resolve()))
    except ValueError:
        return str(path)


async def _scene_arm(
    item: EvalPrompt, arm: Arm, enhancement: EnhancementResult, base_seed: int, context: Context
) -> SceneResult:
    variations = 1 if arm in ("raw", "enhanced") else context.settings.num_variations
    settings = context.settings.model_copy(update={"num_variations": variations, "max_retries": 0, "seed": base_seed})
    state = SceneInput(
        generation_id=generation_id(item, arm),
        scene=ScenePlan(scene_number=1, prompt=item.prompt),
        enhancement=enhancement,
        base_seed=base_seed,
    )
    output = await scene_graph.ainvoke(state, context=dataclasses.replace(context, settings=settings))
    return output["results"][1]


async def run_arm(
    item: EvalPrompt,
    arm: Arm,
    *,
    base_seed: int,
    context: Context,
    judges: dict[str, Scorer],
    eval_dir: Path,
    enhancement: EnhancementResult | None = None,
) -> EvalRecord:
    """Run one arm of one prompt and judge its final image; a failure becomes a failed record.

    The enhanced arm needs ``enhancement``, the full arm's critique-loop result."""
    record = EvalRecord(
        prompt_id=item.id,
        category=item.category,
        arm=arm,
        status="failed",
        generation_id=generation_id(item, arm),
        base_seed=base_seed,
    )
    started = time.perf_counter()
    try:
        update = await _run(item, arm, base_seed, context, enhancement)
    except Exception as exc:  # one arm failing must not end the evaluation
        return record.model_copy(
            update={"error": f"{type(exc).__name__}: {exc}", "wall_s": round(time.perf_counter() - started, 3)}
        )
    result: SceneResult = update.pop("result")
    update["wall_s"] = round(time.perf_counter() - started + update.get("wall_s", 0.0), 3)
    if result.winner_path is None:
        return record.model_copy(update={**update, "error": f"no image selected ({result.status})"})
    try:
        scores = await asyncio.to_thread(judge_image, judges, result.winner_path, item.prompt)
    except Exception as exc:  # a judge that cannot score this image: recorded, not fatal
        return record.model_copy(update={**update, "error": f"judging failed: {type(exc).__name__}: {exc}"})
    return record.model_copy(
        update={
            **update,
            "status": "ok",
            "used_prompt": result.enhanced_prompt,
            "image": _relative(result.winner_path, eval_dir),
            "selection_score": None if result.winner is None else result.winner.overall,
            "judges": scores,
            "images_generated": _images_generated(result),
            "attempts": len(result.attempts),
        }
    )


async def _run(
    item: EvalPrompt, arm: Arm, base_seed: int, context: Context, enhancement: EnhancementResult | None
) -> dict:
    if arm == "full":
        request = StoryboardRequest(generation_id=generation_id(item, arm), concept=item.prompt, scenes=[item.prompt])
        settings = context.settings.model_copy(update={"seed": base_seed})
        summary = await run_storyboard(request, dataclasses.replace(context, settings=settings))
        if summary.status != "completed" or not summary.scenes:
            raise RuntimeError(summary.error or f"the storyboard ended {summary.status}")
        usage = summary.llm_usage
        return {
            "result": summary.scenes[0],
            "enhancement": summary.enhancements[0] if summary.enhancements else None,
            "llm_requests": usage.requests,
            "llm_prompt_tokens": usage.prompt_tokens,
            "llm_completion_tokens": usage.completion_tokens,
        }
    if arm == "enhanced":
        if enhancement is None:
            raise RuntimeError("needs the full arm's enhancement, and the full arm has not finished")
        usage = usage_totals(event for it in enhancement.iterations for event in it.events)
        result = await _scene_arm(item, arm, enhancement, base_seed, context)
        return {
            "result": result,
            # The critique loop's time is part of reaching this prompt, though the full arm ran it.
            "wall_s": sum(it.elapsed_s for it in enhancement.iterations),
            "llm_requests": usage.requests,
            "llm_prompt_tokens": usage.prompt_tokens,
            "llm_completion_tokens": usage.completion_tokens,
            "llm_shared_with": "full",
        }
    return {"result": await _scene_arm(item, arm, as_written(item.prompt), base_seed, context)}
