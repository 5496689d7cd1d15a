"""The storyboard graph end to end with offline backends: chaining, retries with alternate
references, strict and lenient outcomes, cancellation and resume from a checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from factories import make_context
from langgraph.checkpoint.memory import InMemorySaver

from imageforge.agents.heuristics import MAX_SCENES
from imageforge.graph.builder import graph
from imageforge.graph.checkpoint import serializer
from imageforge.graph.run import StoryboardRequest, run_storyboard
from imageforge.graph.state import InputState
from imageforge.tools.storage import save_png
from imageforge.traces import layout
from imageforge.traces.reader import read_trace

SCENES = ["Barista grinds fresh beans at dawn", "Close-up of latte art in a ceramic cup"]


def _request(generation_id: str = "g", **kw) -> StoryboardRequest:
    return StoryboardRequest(generation_id=generation_id, concept="Artisan coffee that starts your morning right", **kw)


async def test_two_scenes_chain_and_write_the_whole_trace(tmp_path):
    context = make_context(tmp_path, consistency_threshold=0)
    events: list[dict] = []
    summary = await run_storyboard(_request(scenes=SCENES), context, on_event=events.append)

    assert summary.status == "completed", summary.error
    assert [s.scene_number for s in summary.scenes] == [1, 2]
    scene1, scene2 = summary.scenes
    # Scene 2's first attempt used scene 1's winner as its reference.
    assert scene1.attempts[0].reference is None
    assert scene2.attempts[0].reference is not None
    assert scene2.attempts[0].reference.path == scene1.winner_path
    assert scene2.attempts[0].reference.kind == "generated"

    folder = Path(context.trace_root) / "g"
    for scene in summary.scenes:
        scene_folder = folder / f"scene_{scene.scene_number}"
        names = {p.name for p in scene_folder.iterdir()}
        iterations = len(summary.enhancements[scene.scene_number - 1].iterations)
        expected = {
            layout.ORIGINAL_PROMPT,
            layout.FINAL_PROMPT,
            layout.PROMPT_SUMMARY,
            layout.QUALITY_SCORES,
            layout.SELECTED_BEST,
            layout.SCENE_RESULT,
            "image_1.png",
            "image_2.png",
        }
        expected |= {layout.agent_file(i, a) for i in range(1, iterations + 1) for a in (1, 2)}
        assert expected <= names, expected - names
        scores = json.loads((scene_folder / layout.QUALITY_SCORES).read_text())
        assert len(scores["attempts"][0]["variations"]) == 2
        assert "image_" in (scene_folder / layout.SELECTED_BEST).read_text()
    # The event stream the CLI and the API consume.
    kinds = [e["type"] for e in events]
    assert kinds[0] == "run_started" and kinds[-1] == "run_done"
    assert kinds.count("scene_done") == 2 and kinds.count("enhance_done") == 2
    # The reader loads what was written.
    assert read_trace(context.trace_root, "g").summary.scenes == summary.scenes
    # Effective weights say which scorers ran: only the stand-in, renormalised to 1.
    assert scene1.ensemble.effective_weights == {"aesthetic": 1.0}
    assert set(scene1.ensemble.missing) == {"pickscore", "clip", "vqa"}


async def test_failed_validation_retries_with_the_next_reference(tmp_path):
    reference = save_png(_solid((20, 60, 200)), tmp_path / "user.png")
    context = make_context(tmp_path, consistency_threshold=100, max_retries=2)
    summary = await run_storyboard(_request(scenes=SCENES, reference_path=str(reference)), context)

    assert summary.status == "completed"
    scene1, scene2 = summary.scenes
    # Scene 1 has only the user image: every attempt uses it.
    assert [a.reference.id for a in scene1.attempts] == ["user", "user", "user"]
    # Scene 2: best-ranked (the previous winner), then the master (the user image), then cycle.
    ids = [a.reference.id for a in scene2.attempts]
    assert ids[0].startswith("scene_1:") and ids[1] == "user" and ids[2] == ids[0]
    assert all(not a.passed for a in scene2.attempts)
    assert scene2.status == "accepted_with_warning"
    assert any("no attempt passed validation" in w for w in scene2.warnings)
    # Every attempt used distinct seeds.
    seeds = [s for a in scene2.attempts for s in a.seeds]
    assert len(seeds) == len(set(seeds))


async def test_strict_mode_fails_the_scene_with_seed_003_details(tmp_path):
    context = make_context(tmp_path, quality_threshold=100, max_retries=1, strict=True)
    summary = await run_storyboard(_request(scenes=SCENES), context)

    assert summary.status == "failed"
    assert len(summary.scenes) == 1  # the storyboard stops at the failed scene
    failed = summary.scenes[0]
    assert failed.status == "failed" and failed.winner is None
    assert failed.error["details"]["totalAttempts"] == 2
    assert failed.error["details"]["failureReasons"] == ["Quality threshold not met"]
    assert "Failed validation - Quality:" in failed.error["details"]["attempts"][0]["reason"]


async def test_planner_scenes_are_all_enhanced_and_generated_in_order(tmp_path):
    context = make_context(tmp_path, num_variations=1, max_enhancement_iterations=2)
    events: list[dict] = []
    summary = await run_storyboard(_request(target_duration_s=15), context, on_event=events.append)
    assert summary.status == "completed"
    assert len(summary.scenes) == len(summary.plan.scenes) == 4
    # Each scene generates only once its own prompt is final and the previous scene is done
    # (pipelined: no barrier waits for every scene's enhancement; test_pipelined_scenes.py).
    order = {(e["type"], e.get("scene")): i for i, e in reversed(list(enumerate(events)))}
    for k in range(1, 5):
        assert order[("enhance_done", k)] < order[("scene_started", k)]
        if k > 1:
            assert order[("scene_done", k - 1)] < order[("scene_started", k)]


async def test_cancel_then_resume_does_not_regenerate_finished_scenes(tmp_path):
    context = make_context(tmp_path, consistency_threshold=0)
    saver = InMemorySaver(serde=serializer())
    done: list[int] = []

    def on_event(event):
        if event["type"] == "scene_done":
            done.append(event["scene"])

    cancelled = await run_storyboard(
        _request("r", scenes=SCENES),
        context,
        checkpointer=saver,
        on_event=on_event,
        should_stop=lambda: bool(done),
    )
    assert cancelled.status == "cancelled"
    assert [s.scene_number for s in cancelled.scenes] == [1]
    first = Path(context.trace_root) / "r" / "scene_1" / "attempts" / "attempt_1" / "image_1.png"
    stamp = first.stat().st_mtime_ns

    events: list[dict] = []
    resumed = await run_storyboard(
        _request("r", scenes=SCENES),
        context,
        checkpointer=saver,
        resume=True,
        on_event=events.append,
    )
    assert resumed.status == "completed"
    assert [s.scene_number for s in resumed.scenes] == [1, 2]
    assert first.stat().st_mtime_ns == stamp  # scene 1 was not generated again
    assert {e["scene"] for e in events if e["type"] == "variations_generated"} == {2}
    assert resumed.scenes[1].attempts[0].reference.path == resumed.scenes[0].winner_path


def _solid(rgb):
    from PIL import Image

    return Image.new("RGB", (64, 64), rgb)


async def test_refining_a_scene_keeps_the_scenes_before_it(tmp_path):
    context = make_context(tmp_path, consistency_threshold=0)
    first = await run_storyboard(_request("base", scenes=[*SCENES, "Steam rising over the finished cup"]), context)
    assert first.status == "completed"

    plan = first.plan.model_copy(deep=True)
    plan.scenes[1].prompt += ", moodier, at night"
    events: list[dict] = []
    refined = await run_storyboard(
        _request("refined", plan=plan, reuse_from="base", keep_scenes=1), context, on_event=events.append
    )
    assert refined.status == "completed", refined.error
    kept, redone = refined.scenes[0], refined.scenes[1]
    new_folder = Path(context.trace_root) / "refined"
    assert kept.winner_path == str(new_folder / "scene_1" / Path(first.scenes[0].winner_path).name)
    assert Path(kept.winner_path).read_bytes() == Path(first.scenes[0].winner_path).read_bytes()
    assert kept.winner.overall == first.scenes[0].winner.overall
    assert {e["scene"] for e in events if e["type"] == "enhance_done"} == {2, 3}
    assert {e["scene"] for e in events if e["type"] == "variations_generated"} == {2, 3}
    assert "at night" in refined.enhancements[1].original_prompt
    assert redone.attempts[0].reference.path == kept.winner_path


def test_keep_scenes_needs_a_source_and_a_plan():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="reuse_from"):
        _request("x", keep_scenes=1)


async def test_a_scene_naming_a_character_ranks_its_references(tmp_path):
    from imageforge.agents.heuristics import plan_heuristic
    from imageforge.tools.schemas import ReferenceImage

    master = save_png(_solid((200, 40, 40)), tmp_path / "master.png")
    core = save_png(_solid((40, 200, 40)), tmp_path / "core.png")
    plan = plan_heuristic("Artisan coffee that starts your morning right", None, 2)
    plan.scenes[1].character_ids = ["char_1"]
    refs = {
        "char_1": [
            ReferenceImage(id="char_1:master", kind="master", path=str(master)),
            ReferenceImage(id="char_1:core_front", kind="core", path=str(core)),
        ]
    }
    context = make_context(tmp_path, consistency_threshold=100, max_retries=3)
    summary = await run_storyboard(_request("chars", plan=plan, character_references=refs), context)
    assert summary.status == "completed"
    scene1, scene2 = summary.scenes
    assert all(a.reference is None for a in scene1.attempts)  # scene 1 names no character
    ids = [a.reference.id for a in scene2.attempts]
    # previous winner first (chain bonus), then the master, then the rest in rank order
    assert ids[0].startswith("scene_1:") and ids[1] == "char_1:master" and "char_1:core_front" in ids[2:]


async def test_explicit_scenes_over_the_limit_fail_instead_of_being_replaced(tmp_path: Path) -> None:
    """Straight into the compiled graph (as LangGraph Studio calls it), past the request schema."""
    context = make_context(tmp_path)
    scenes = [f"Scene {k}: a cup of coffee" for k in range(MAX_SCENES + 1)]
    with pytest.raises(ValueError, match=f"at most {MAX_SCENES}"):
        await graph.ainvoke(InputState(generation_id="too-many", concept="coffee", scenes=scenes), context=context)
