"""The seed-004 status document: built from stored rows (pure functions), cached between
polls, and read for a caller with the runner's live progress on top.

Clients poll GET /api/generations/{id} many times per scene, while a generation's document
changes only when the job runner writes to it (start, plan, scene, finish, cancel) and the
runner says so. So a poll is usually answered from memory, on the event loop, without a
database query or a trip to the thread pool; only the live progress is added per request.

``StatusDocumentCache`` is versioned against a race: the runner invalidates after it commits;
a reader that loaded before that commit but stores after the invalidation would otherwise
keep a stale entry, so a load is stored only if the version it started from is still current.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from cachetools import LRUCache
from fastapi import HTTPException, status
from sqlalchemy.engine import Engine
from sqlmodel import Session

from imageforge.api.crud import generation as crud
from imageforge.api.models.generation import (
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
    "StatusDocumentCache",
    "apply_live",
    "build_status_document",
    "generation_links",
    "image_url",
    "owned_document",
    "recorded_scenes",
    "stored_document",
    "to_public",
]

V = TypeVar("V")

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
        status=generation.status,
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


# Cached documents --------------------------------------------------------------------------
class StatusDocumentCache(Generic[V]):
    """Values derived from one generation's stored rows (its status documents), per sub-key
    (the base URL), least recently used evicted first (a cachetools ``LRUCache``)."""

    def __init__(self, *, max_entries: int = 4096) -> None:
        if max_entries < 1:
            raise ValueError(f"`max_entries` must be at least 1, got {max_entries!r}.")
        self._max_entries = max_entries
        self._lock = threading.Lock()  # cachetools caches are not thread-safe
        self._counter = itertools.count(1)
        self._epoch = 0  # the version of every generation not in ``_versions``
        self._versions: dict[str, int] = {}
        # generation id -> (version, {sub-key -> value})
        self._entries: LRUCache[str, tuple[int, dict[str, V]]] = LRUCache(maxsize=max_entries)

    def _version(self, generation_id: str) -> int:
        return self._versions.get(generation_id, self._epoch)

    def _current(self, generation_id: str, key: str) -> tuple[bool, V | None]:
        entry = self._entries.get(generation_id)  # a hit counts as a use
        if entry is None or entry[0] != self._version(generation_id) or key not in entry[1]:
            return False, None
        return True, entry[1][key]

    def peek(self, generation_id: str, key: str) -> V | None:
        with self._lock:
            return self._current(generation_id, key)[1]

    def get(self, generation_id: str, key: str, load: Callable[[], V]) -> V:
        """The cached value, or ``load()``'s (stored when no change raced with it). A load
        that raises stores nothing."""
        with self._lock:
            version = self._version(generation_id)
            found, value = self._current(generation_id, key)
            if found:
                return value  # type: ignore[return-value]
        value = load()
        with self._lock:
            if self._version(generation_id) == version:
                entry = self._entries.get(generation_id)
                values = entry[1] if entry is not None and entry[0] == version else {}
                values[key] = value
                self._entries[generation_id] = (version, values)
        return value

    def invalidate(self, generation_id: str) -> None:
        with self._lock:
            self._versions[generation_id] = next(self._counter)
            self._entries.pop(generation_id, None)
            if len(self._versions) > 4 * self._max_entries:
                # Forget old versions; a new epoch makes every load in flight miss instead
                # of storing what it read under a version that is no longer tracked.
                self._versions.clear()
                self._epoch = next(self._counter)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


def stored_document(
    *, engine: Engine, documents: StatusDocumentCache[Any], generation_id: str, base_url: str
) -> tuple[int, GenerationStatusDocument]:
    """(owner id, document without live progress), from the cache or the database (blocking);
    404 when there is no such generation."""

    def load() -> tuple[int, GenerationStatusDocument]:
        with Session(engine) as session:
            generation = crud.get_generation(session=session, generation_id=generation_id, user_id=None)
            if generation is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, f"Generation {generation_id!r} not found.")
            rows = crud.load_scenes(session=session, generation_id=generation_id)
            scenes = recorded_scenes(generation_id, rows, base_url=base_url)
            return generation.user_id, build_status_document(generation, scenes, base_url=base_url)

    return documents.get(generation_id, base_url, load)


def owned_document(
    *,
    engine: Engine,
    documents: StatusDocumentCache[Any],
    live: Callable[[str], LiveState | None],
    generation_id: str,
    user_id: int,
    base_url: str,
) -> GenerationStatusDocument:
    """The user's status document with live progress, or 404 (also for another user's)."""
    owner, document = stored_document(
        engine=engine, documents=documents, generation_id=generation_id, base_url=base_url
    )
    if owner != user_id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Generation {generation_id!r} not found.")
    return apply_live(document, live(generation_id))
