"""The seed-004 status document, built from stored rows: a pure function, no I/O."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from imageforge.api.models import (
    AttemptPublic,
    AttemptRecord,
    Generation,
    GenerationPublic,
    GenerationStatusDocument,
    Scene,
    ScenePublic,
    StoryboardPlanPublic,
    Variation,
    VariationPublic,
)

__all__ = [
    "LiveState",
    "apply_live",
    "build_status_document",
    "generation_links",
    "image_url",
    "recorded_scenes",
    "to_public",
]

LiveState = dict[str, Any]
"""What the runner knows beyond the database while a job runs: progress, current_step, scene."""

_SEED_SETTINGS = ("quality_threshold", "num_variations", "max_enhancement_iterations")


def generation_links(base_url: str, generation_id: str) -> dict[str, str]:
    root = f"{base_url.rstrip('/')}/api/generations/{generation_id}"
    return {
        "status": root,
        "events": f"{root}/events",
        "websocket": f"{root}/ws",
        "cancel": f"{root}/cancel",
        "trace": f"{root}/trace",
    }


def image_url(base_url: str, generation_id: str, relative_path: str) -> str:
    return f"{base_url.rstrip('/')}/api/generations/{generation_id}/images/{quote(relative_path)}"


def to_public(generation: Generation, base_url: str, live: LiveState | None = None) -> GenerationPublic:
    public = GenerationPublic.model_validate(generation, from_attributes=True)
    updates: dict[str, Any] = {"status_url": generation_links(base_url, generation.id)["status"]}
    if live and generation.status == "running":
        updates["progress"] = max(generation.progress, int(live.get("progress", 0)))
        updates["current_step"] = live.get("current_step", generation.current_step)
    return public.model_copy(update=updates)


def _variation(base_url: str, generation_id: str, row: Variation) -> VariationPublic:
    return VariationPublic(
        index=row.index,
        seed=row.seed,
        overall=row.overall,
        consistency=row.consistency,
        components=dict(row.components),
        rank=row.rank,
        image_url=image_url(base_url, generation_id, row.path),
    )


def _attempt(base_url: str, generation_id: str, row: AttemptRecord, variations: list[Variation]) -> AttemptPublic:
    return AttemptPublic(
        attempt=row.attempt,
        reference_id=row.reference_id,
        reference_kind=row.reference_kind,
        quality_score=row.quality,
        consistency_score=row.consistency,
        passed=row.passed,
        reason=row.reason,
        best_index=row.best_index,
        seeds=list(row.seeds),
        generator=row.generator,
        generator_model=row.generator_model,
        variations=[_variation(base_url, generation_id, v) for v in variations],
    )


def recorded_scenes(
    generation_id: str,
    scenes: list[tuple[Scene, list[tuple[AttemptRecord, list[Variation]]]]],
    *,
    base_url: str,
) -> dict[int, ScenePublic]:
    """The stored scenes, with their attempts, variations and image URLs, by scene number."""
    return {
        scene.scene_number: ScenePublic(
            scene_number=scene.scene_number,
            status=scene.status,
            enhanced_prompt=scene.enhanced_prompt,
            reference_image_url=image_url(base_url, generation_id, scene.winner_path) if scene.winner_path else None,
            quality_score=scene.quality_score,
            consistency_score=scene.consistency_score,
            component_scores=dict(scene.components),
            attempts=[_attempt(base_url, generation_id, a, v) for a, v in attempts],
            warnings=list(scene.warnings),
            error=scene.error,
        )
        for scene, attempts in scenes
    }


def build_status_document(
    generation: Generation,
    recorded: dict[int, ScenePublic],
    *,
    base_url: str,
    live: LiveState | None = None,
) -> GenerationStatusDocument:
    """Planned scenes appear as ``pending`` until their results are stored; ``live`` (the
    runner's progress of a running job) is applied with :func:`apply_live`."""
    request = generation.request or {}
    settings: dict[str, Any] = dict(request.get("settings") or {})
    plan = generation.plan or {}
    planned = {int(s["scene_number"]): s for s in plan.get("scenes", []) if "scene_number" in s}
    if not planned and request.get("scenes"):
        planned = {i + 1: {"scene_number": i + 1, "prompt": p} for i, p in enumerate(request["scenes"])}

    scene_docs: list[ScenePublic] = []
    for number in sorted(set(planned) | set(recorded)):
        prompt = planned.get(number, {}).get("prompt")
        if number in recorded:
            scene_docs.append(recorded[number].model_copy(update={"prompt": prompt}))
        else:
            scene_docs.append(ScenePublic(scene_number=number, status="pending", prompt=prompt))

    document = GenerationStatusDocument(
        generation_id=generation.id,
        status=generation.status,  # type: ignore[arg-type]
        progress=generation.progress,
        current_step=generation.current_step,
        created_at=generation.created_at,
        started_at=generation.started_at,
        finished_at=generation.finished_at,
        elapsed_s=generation.elapsed_s,
        error=generation.error,
        cancel_requested=generation.cancel_requested,
        warnings=list(generation.warnings),
        storyboard_plan=StoryboardPlanPublic(
            advanced_image_settings={k: settings[k] for k in _SEED_SETTINGS if k in settings},
            settings=settings,
            backends=generation.backends or dict(request.get("backends") or {}),
            concept=generation.concept,
            target_duration=request.get("target_duration_s"),
            consistency_markers=plan.get("markers"),
            scenes=scene_docs,
        ),
        links=generation_links(base_url, generation.id),
    )
    return apply_live(document, live)


def apply_live(document: GenerationStatusDocument, live: LiveState | None) -> GenerationStatusDocument:
    """A running job's document with the runner's progress, step and current scene."""
    if not live or document.status != "running":
        return document
    scene = live.get("scene")
    scenes = [
        s.model_copy(update={"status": "running"}) if s.scene_number == scene and s.status == "pending" else s
        for s in document.storyboard_plan.scenes
    ]
    return document.model_copy(
        update={
            "progress": max(document.progress, int(live.get("progress", 0))),
            "current_step": str(live.get("current_step", document.current_step)),
            "storyboard_plan": document.storyboard_plan.model_copy(update={"scenes": scenes}),
        }
    )
