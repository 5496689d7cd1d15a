"""One scene: generate N variations -> score -> validate -> retry with the next reference ->
select -> write the trace.

The attempt schedule (which reference each attempt uses) is decided once, up front, by
seed 003's ranking and attempt strategy (tools.references); the nodes only follow it.
Model calls are blocking, so they run in worker threads and never stall the event loop.
"""

from __future__ import annotations

import asyncio
import time
from typing import Literal

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from imageforge.graph.cancel import stoppable
from imageforge.graph.context import Context
from imageforge.graph.events import emit
from imageforge.graph.selection import (
    choose_winner,
    combined_consistency,
    explain_winner,
    quality_scores_document,
    validate,
)
from imageforge.graph.services import services_for
from imageforge.graph.state import SceneInput, SceneOutput, SceneState
from imageforge.scoring.ensemble import combine, effective_weights, ensemble_report, rank
from imageforge.scoring.schemas import VariationScore
from imageforge.tools.references import attempt_references, rank_references, reference_features
from imageforge.tools.schemas import ReferenceImage, StoredImage
from imageforge.tools.seeds import derive_seeds
from imageforge.tools.sizes import choose_frame
from imageforge.tools.storage import load_image, save_pngs
from imageforge.traces.schemas import Attempt, SceneResult
from imageforge.traces.writer import TraceWriter


def _attempt_number(state: SceneState) -> int:
    return len(state.attempts) + 1


def _references(state: SceneState) -> list[ReferenceImage]:
    """The attempt's chosen reference first, then the anchor that keeps long boards steady."""
    chosen = state.schedule[_attempt_number(state) - 1] if state.schedule else None
    refs = [chosen] if chosen is not None else []
    if state.anchor is not None and all(r.path != state.anchor.path for r in refs) and refs:
        refs.append(state.anchor)
    return refs


async def plan_attempts(state: SceneState, runtime: Runtime[Context]) -> dict:
    """Rank the reference candidates and fix which one each attempt will use."""
    analysis = reference_features(state.enhancement.final.prompt)
    ranking = rank_references(state.candidates, analysis, chain_scene=state.chain_scene)
    schedule = attempt_references(ranking, runtime.context.settings.max_attempts)
    emit(
        "scene_started",
        f"scene {state.scene.scene_number}: {len(state.candidates)} reference candidate(s)",
        scene=state.scene.scene_number,
        ranking=[{"id": r.reference.id, "score": r.score, "reasons": r.reasons} for r in ranking],
        schedule=[None if r is None else r.id for r in schedule],
    )
    return {"ranking": ranking, "schedule": schedule}


async def generate(state: SceneState, runtime: Runtime[Context]) -> dict:
    """All N variations of this attempt in one generator call, each with its own seed."""
    settings = runtime.context.settings
    services = services_for(runtime.context)
    scene = state.scene.scene_number
    attempt = _attempt_number(state)
    references = _references(state)
    seeds = derive_seeds(state.base_seed, scene, attempt, settings.num_variations)
    emit(
        "attempt_started",
        f"scene {scene}: attempt {attempt} with reference {references[0].id if references else 'none'}",
        scene=scene,
        attempt=attempt,
        reference=references[0].id if references else None,
        variations=settings.num_variations,
    )
    final = state.enhancement.final
    writer = TraceWriter(runtime.context.trace_root, state.generation_id)

    # The model's native area unless the resolution was set explicitly (tools.sizes).
    frame, frame_source = choose_frame(
        services.generator,
        settings.aspect_ratio,
        settings.resolution,
    )

    def run() -> tuple[list[StoredImage], dict]:
        opened = [r.open() for r in references]
        output = services.generator.generate(
            final.prompt,
            negative_prompt=final.negative_prompt,
            seeds=seeds,
            references=opened,
            size=frame,
        )
        paths = save_pngs(
            [
                (item.image, writer.attempt_image_path(scene, attempt, i))
                for i, item in enumerate(output.images, start=1)
            ]
        )
        stored = [
            StoredImage(index=i, seed=item.seed, path=str(path), metadata=item.metadata)
            for i, (item, path) in enumerate(zip(output.images, paths, strict=False), start=1)
        ]
        info = {
            "backend": output.backend,
            "model": output.model,
            "elapsed_s": output.elapsed_s,
            "cache_hits": output.cache_hits,
            "warnings": output.warnings,
            "size": str(frame),
            "size_source": frame_source,
        }
        return stored, info

    started = time.perf_counter()
    stored, info = await asyncio.to_thread(run)
    elapsed = time.perf_counter() - started
    emit(
        "variations_generated",
        f"scene {scene}: {len(stored)} variation(s)",
        scene=scene,
        attempt=attempt,
        count=len(stored),
    )
    return {"images": stored, "generation": info, "timings": {"generate": round(elapsed, 4)}}


async def score(state: SceneState, runtime: Runtime[Context]) -> dict:
    """Every scorer over the whole batch, then the weighted ensemble and the ranking."""
    services = services_for(runtime.context)
    scorers = services.scorers
    references = _references(state)
    prompt = state.enhancement.final.prompt
    attempt = _attempt_number(state)

    def run() -> tuple[dict[str, list[float]], list[float] | None, list[float] | None, dict[str, str]]:
        images = [load_image(item.path) for item in state.images]
        components: dict[str, list[float]] = {}
        failed: dict[str, str] = {}
        for scorer in scorers.scorers:
            try:
                # Out of memory shrinks the batch and retries (ScorerSet.score); only a scorer
                # that fails otherwise, or even on one image, is left out of this attempt.
                components[scorer.slot] = scorers.score(scorer, images, prompt)
            except Exception as exc:
                failed[scorer.slot] = f"{scorer.name} failed: {exc}"
        to_reference = to_anchor = None
        if references:
            opened = [r.open() for r in references]
            to_reference = scorers.consistency_scores(images, opened[:1])
            # The anchor, when it is a second reference: validated by combined_consistency.
            if len(opened) > 1:
                to_anchor = scorers.consistency_scores(images, opened[1:2])
        return components, to_reference, to_anchor, failed

    started = time.perf_counter()
    components, to_reference, to_anchor, failed = await asyncio.to_thread(run)
    weights = effective_weights(components)
    overalls = combine(components, weights)
    ranks = rank(overalls)
    reference_id = references[0].id if references else None
    scored = [
        VariationScore(
            attempt=attempt,
            index=item.index,
            seed=item.seed,
            path=item.path,
            reference_id=reference_id,
            components={slot: round(values[i], 2) for slot, values in components.items()},
            overall=round(overalls[i], 2),
            consistency=None
            if to_reference is None
            else round(combined_consistency(to_reference[i], None if to_anchor is None else to_anchor[i]), 2),
            consistency_reference=None if to_reference is None else round(to_reference[i], 2),
            consistency_anchor=None if to_anchor is None else round(to_anchor[i], 2),
            rank=ranks[i],
        )
        for i, item in enumerate(state.images)
    ]
    elapsed = time.perf_counter() - started
    best = min(scored, key=lambda v: v.rank)
    emit(
        "variations_scored",
        f"scene {state.scene.scene_number}: best image_{best.index} at {best.overall:.1f}",
        scene=state.scene.scene_number,
        attempt=attempt,
        overalls=[v.overall for v in scored],
        effective_weights=weights,
    )
    warnings = [f"scene {state.scene.scene_number}: {reason}; weights renormalised" for reason in failed.values()]
    return {
        "scored": scored,
        "timings": {**state.timings, "score": round(elapsed, 4)},
        "generation": {
            **state.generation,
            "weights": weights,
            "scorer_failures": failed,
            "warnings": [*state.generation.get("warnings", []), *warnings],
        },
    }


async def validate_attempt(state: SceneState, runtime: Runtime[Context]) -> dict:
    """Quality (and consistency, when there was a reference) against the thresholds."""
    settings = runtime.context.settings
    best = min(state.scored, key=lambda v: v.rank)
    passed, reason, failures = validate(
        best, quality_threshold=settings.quality_threshold, consistency_threshold=settings.consistency_threshold
    )
    references = _references(state)
    attempt = Attempt(
        attempt=_attempt_number(state),
        reference=references[0] if references else None,
        anchor=references[1] if len(references) > 1 else None,
        seeds=[item.seed for item in state.images],
        variations=state.scored,
        best_index=best.index,
        quality=best.overall,
        consistency=best.consistency,
        passed=passed,
        reason=reason,
        failure_reasons=failures,
        generator=state.generation.get("backend", ""),
        generator_model=state.generation.get("model", ""),
        cache_hits=state.generation.get("cache_hits", 0),
        size=state.generation.get("size", ""),
        size_source=state.generation.get("size_source", ""),
        timings_s=state.timings,
        warnings=list(state.generation.get("warnings", [])),
    )
    emit(
        "attempt_validated",
        f"scene {state.scene.scene_number}: attempt {attempt.attempt}: {reason}",
        scene=state.scene.scene_number,
        attempt=attempt.attempt,
        passed=passed,
        quality=attempt.quality,
        consistency=attempt.consistency,
    )
    return {"attempts": [attempt], "images": [], "scored": [], "timings": {}}


def route_after_validation(state: SceneState, runtime: Runtime[Context]) -> Literal["generate", "select"]:
    """Retry with the next reference while attempts remain; otherwise select."""
    if not state.attempts:
        raise ValueError("routing after validation needs at least one attempt")
    if state.attempts[-1].passed or len(state.attempts) >= runtime.context.settings.max_attempts:
        return "select"
    return "generate"


def _error_details(attempts: list[Attempt]) -> dict:
    """Seed 003's error response body for a scene whose attempts all failed."""
    reasons = sorted({r for a in attempts for r in a.failure_reasons})
    return {
        "success": False,
        "error": f"All {len(attempts)} attempts failed validation",
        "details": {
            "attempts": [
                {
                    "referenceUsed": None if a.reference is None else f"{a.reference.kind}:{a.reference.id}",
                    "qualityScore": a.quality,
                    "consistencyScore": a.consistency,
                    "reason": a.reason,
                }
                for a in attempts
            ],
            "totalAttempts": len(attempts),
            "failureReasons": reasons,
        },
    }


async def select(state: SceneState, runtime: Runtime[Context]) -> dict:
    """Pick the winning attempt, explain it and publish its images in the scene folder."""
    settings = runtime.context.settings
    scene = state.scene.scene_number
    winner, status = choose_winner(state.attempts, strict=settings.strict)
    shown = winner or state.attempts[-1]
    effective = effective_weights(shown.best.components)
    services = services_for(runtime.context)
    missing = dict(services.scorers.missing)
    present = set(effective)
    infos = [info for info in services.scorers.infos() if info.slot in present]
    for info in services.scorers.infos():
        if info.slot not in present:
            missing.setdefault(info.slot, f"{info.name} failed at run time")
    warnings = [w for a in state.attempts for w in a.warnings]
    if status == "accepted_with_warning":
        if winner is None:
            raise RuntimeError(f"scene {scene}: choose_winner accepted with a warning but kept no attempt")
        warnings.append(
            f"scene {scene}: no attempt passed validation after {len(state.attempts)} attempt(s); "
            f"kept attempt {winner.attempt} ({winner.reason})"
        )
    final = state.enhancement.final
    result = SceneResult(
        scene_number=scene,
        status=status,
        enhanced_prompt=final.prompt,
        negative_prompt=final.negative_prompt,
        winner=None if winner is None else winner.best,
        winner_attempt=None if winner is None else winner.attempt,
        attempts=state.attempts,
        reason="" if winner is None else explain_winner(winner, effective, status),
        ensemble=ensemble_report(infos, missing),
        warnings=warnings,
        error=_error_details(state.attempts) if status == "failed" else None,
        timings_s={
            "generate": round(sum(a.timings_s.get("generate", 0.0) for a in state.attempts), 4),
            "score": round(sum(a.timings_s.get("score", 0.0) for a in state.attempts), 4),
        },
    )
    return {"result": result}


async def write_trace(state: SceneState, runtime: Runtime[Context]) -> dict:
    """quality_scores.json, selected_best.txt, scene_result.json and image_<i>.png."""
    result = state.result
    assert result is not None, "write_trace runs after select"
    winner = next((a for a in result.attempts if a.attempt == result.winner_attempt), None)
    weights = result.ensemble.effective_weights
    selected = result.reason or (
        f"No image selected: strict mode and every attempt failed validation.\n{result.error}\n"
    )
    writer = TraceWriter(runtime.context.trace_root, state.generation_id)
    published = await asyncio.to_thread(
        writer.scene_result, result, quality_scores_document(result.attempts, weights, winner), selected
    )
    return {"result": published, "results": {published.scene_number: published}}


builder = StateGraph(SceneState, context_schema=Context, input_schema=SceneInput, output_schema=SceneOutput)
builder.add_node("plan_attempts", stoppable(plan_attempts))
builder.add_node("generate", stoppable(generate))
builder.add_node("score", stoppable(score))
builder.add_node("validate", stoppable(validate_attempt))
builder.add_node("select", stoppable(select))
builder.add_node("write_trace", stoppable(write_trace))
builder.add_edge(START, "plan_attempts")
builder.add_edge("plan_attempts", "generate")
builder.add_edge("generate", "score")
builder.add_edge("score", "validate")
builder.add_conditional_edges("validate", route_after_validation, ["generate", "select"])
builder.add_edge("select", "write_trace")
builder.add_edge("write_trace", END)

scene_graph = builder.compile(name="scene")
