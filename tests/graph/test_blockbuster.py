"""The graphs never block their event loop: with blockbuster active (what ``langgraph dev``
uses to refuse blocking calls), any file I/O, image encoding or model call made on the loop
raises BlockingError and fails the run. Offline backends: heuristic agents, the sketch
generator, the stand-in scorers."""

from __future__ import annotations

from pathlib import Path

import pytest
from blockbuster import BlockBuster, blockbuster_ctx
from factories import make_context
from langgraph.checkpoint.memory import InMemorySaver
from PIL import Image

from imageforge.graph.assistant import AssistantContext, compile_assistant, run_turn
from imageforge.graph.builder import graph
from imageforge.graph.checkpoint import serializer
from imageforge.graph.context import BackendSettings
from imageforge.graph.run import StoryboardRequest, run_storyboard
from imageforge.graph.standalone import embedded_runner
from imageforge.graph.state import InputState
from imageforge.scoring.settings import ScorerSettings
from imageforge.tools.storage import save_png

OFFLINE = BackendSettings(llm="heuristic", generator="sketch", scoring=ScorerSettings(scorers=("offline",)))


@pytest.fixture
def blocking_refused():
    """Blockbuster on for the test body; a blocking call anywhere on the loop raises."""
    with blockbuster_ctx() as bb:
        yield bb


async def test_blockbuster_catches_a_blocking_call(blocking_refused: BlockBuster, tmp_path: Path) -> None:
    """The guard is live: this would pass vacuously if blockbuster were not patching anything."""
    from blockbuster import BlockingError

    with pytest.raises(BlockingError):
        (tmp_path / "x").mkdir()


async def test_the_storyboard_graph_never_blocks(tmp_path: Path) -> None:
    reference = save_png(Image.new("RGB", (64, 64), (20, 60, 200)), tmp_path / "user.png")
    context = make_context(tmp_path, consistency_threshold=0)
    with blockbuster_ctx():
        # Straight into the compiled graph, as LangGraph's server calls it: from a concept alone.
        values = await graph.ainvoke(
            InputState(concept="Artisan coffee that starts your morning right"), context=context
        )
        assert values["error"] is None and len(values["results"]) == len(values["plan"].scenes)
        assert values["generation_id"]
        # Checkpointed, with a user reference, then a derived storyboard that keeps scene 1.
        saver = InMemorySaver(serde=serializer())
        base = await run_storyboard(
            StoryboardRequest(
                generation_id="base", concept="Artisan coffee", num_scenes=2, reference_path=str(reference)
            ),
            context,
            checkpointer=saver,
        )
        assert base.status == "completed", base.error
        plan = base.plan.model_copy(deep=True)
        plan.scenes[1].prompt += ", at night"
        derived = await run_storyboard(
            StoryboardRequest(
                generation_id="derived", concept="Artisan coffee", plan=plan, reuse_from="base", keep_scenes=1
            ),
            context,
        )
        assert derived.status == "completed", derived.error


async def test_the_assistant_graph_never_blocks_and_runs_standalone(tmp_path: Path) -> None:
    """No service attached: the tools act on the embedded runner, which runs the storyboard here."""
    trace_root = str(tmp_path / "traces")
    assistant = compile_assistant(InMemorySaver())
    context = AssistantContext(trace_root=trace_root, backends=OFFLINE)
    runner = embedded_runner(trace_root, OFFLINE)
    with blockbuster_ctx():
        started = await run_turn(
            assistant, conversation_id="c", message="make a 2 scene storyboard about artisan coffee", context=context
        )
        assert started.generation_id and started.actions[0]["type"] == "storyboard_started", started.reply
        summary = await runner.wait(started.generation_id)
        assert summary.status == "completed" and len(summary.scenes) == 2, summary.error

        status = await run_turn(assistant, conversation_id="c", message="how is it going?", context=context)
        assert f"{started.generation_id} is completed: 2 of 2 scenes finished" in status.reply

        explained = await run_turn(assistant, conversation_id="c", message="why did scene 1 win?", context=context)
        assert "Scene 1:" in explained.reply and explained.actions[0]["type"] == "winner_explained"

        refined = await run_turn(
            assistant, conversation_id="c", message="make scene 2 moodier, at night", context=context
        )
        assert refined.actions[0]["type"] == "scene_refined", refined.reply
        again = await runner.wait(refined.generation_id)
        assert again.status == "completed", again.error
        assert "at night" in again.scenes[1].enhanced_prompt or "at night" in again.enhancements[1].original_prompt


@pytest.fixture(autouse=True)
def _warm_imports(tmp_path: Path) -> None:
    """Lazy imports and one-time data loads (the heuristics' vocabulary and subject books) read
    files once per process, as a worker's start-up does; do them before the guard is on."""
    import asyncio

    context = make_context(tmp_path / "warm")
    asyncio.run(run_storyboard(StoryboardRequest(generation_id="warm", concept="coffee", num_scenes=1), context))
