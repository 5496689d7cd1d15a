"""Deriving a storyboard from an earlier one: keep its first scenes, redo the rest.

Refining scene k ("make scene 2 moodier, at night") must not regenerate scenes 1..k-1, but
the new generation's trace must still be complete on its own. So the kept scenes' folders
are copied into the new generation (images hard-linked where the file system allows) and
their recorded paths are rewritten to the copies.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from imageforge.agents.schemas import EnhancementResult
from imageforge.tools.references import reference_features
from imageforge.tools.schemas import ReferenceImage
from imageforge.traces import layout
from imageforge.traces.reader import read_trace
from imageforge.traces.schemas import SceneResult


def winner_reference(result: SceneResult) -> ReferenceImage:
    """A finished scene's winner as a reference candidate for the scenes after it."""
    if result.winner is None or result.winner_path is None:
        raise ValueError(f"scene {result.scene_number} has no winner to chain from")
    analysis = reference_features(result.enhanced_prompt)
    return ReferenceImage(
        id=f"scene_{result.scene_number}:image_{result.winner.index}",
        kind="generated",
        path=result.winner_path,
        scene_number=result.scene_number,
        quality_score=result.winner.overall,
        consistency_score=result.winner.consistency,
        shot_type=analysis.shot_type,
        camera_angle=analysis.angle,
        keywords=analysis.keywords,
    )


def anchor_from(winner: ReferenceImage) -> ReferenceImage:
    """Scene 1's winner anchors a storyboard that has no user image."""
    return winner.model_copy(update={"id": f"anchor:{winner.id}", "kind": "master"})


def _copy_tree(source: Path, target: Path) -> None:
    def link_or_copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=link_or_copy, dirs_exist_ok=True)


def keep_scenes(
    trace_root: str | Path, source_id: str, target_id: str, keep: int
) -> tuple[dict[int, SceneResult], dict[int, EnhancementResult]]:
    """Copy scenes 1..keep of ``source_id`` into ``target_id``; their results, re-pathed.

    Raises ValueError when the source does not have that many finished scenes.
    """
    document = read_trace(trace_root, source_id)
    results = {s.scene_number: s for s in document.summary.scenes if s.scene_number <= keep}
    missing = [k for k in range(1, keep + 1) if k not in results or results[k].winner is None]
    if missing:
        raise ValueError(f"`keep_scenes`: generation {source_id!r} has no finished scene(s) {missing}")
    enhancements = {e.scene_number: e for e in document.summary.enhancements if e.scene_number <= keep}
    old_root = layout.generation_dir(trace_root, source_id)
    new_root = layout.generation_dir(trace_root, target_id)
    for number in results:
        _copy_tree(old_root / f"scene_{number}", new_root / f"scene_{number}")
    old_prefix, new_prefix = f"{old_root}{os.sep}", f"{new_root}{os.sep}"
    moved = {
        k: SceneResult.model_validate_json(r.model_dump_json().replace(old_prefix, new_prefix))
        for k, r in results.items()
    }
    return moved, enhancements
