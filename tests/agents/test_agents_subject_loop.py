"""The enhancement loop guards faithfulness (issue 12, part 2): a version that lost the
scene's subject is never approved nor kept, and the trace shows the check."""

from __future__ import annotations

from pathlib import Path

from factories import make_context
from fakes import ScriptedChatModel, tool_call_message

from imageforge.agents.heuristics import plan_heuristic
from imageforge.agents.schemas import CritiqueDraft, DimensionScores, EnhancedPrompt
from imageforge.agents.subject import check_subject
from imageforge.graph.enhancement import enhancement_graph
from imageforge.graph.state import EnhanceInput
from imageforge.traces import layout

PLAN = plan_heuristic("A lighthouse keeper's last night before automation", None, 2)
SCENE, MARKERS = PLAN.scenes[0], PLAN.markers


def _draft(text: str) -> EnhancedPrompt:
    return EnhancedPrompt(
        prompt=f"{text}, medium close-up, 85mm f/1.8, window light from the left, 4500K.",
        shot_type="medium close-up",
        camera_angle="eye-level",
        lens="85mm",
        aperture="f/1.8",
        lighting="window light from the left",
        color_temperature_k=4500,
        composition="rule of thirds",
    )


def _critique(score: float, *, kept: bool = True) -> CritiqueDraft:
    scores = DimensionScores(
        completeness=score, specificity=score, professionalism=score, cinematography=score, brand_alignment=score
    )
    return CritiqueDraft(scores=scores, critique=f"scored {score}", suggestions=[], subject_kept=kept)


async def _run(tmp_path: Path, replies: list, **settings):
    context = make_context(tmp_path, llm=ScriptedChatModel.from_replies(replies), **settings)
    out = await enhancement_graph.ainvoke(
        EnhanceInput(generation_id="g", scene=SCENE, markers=MARKERS), context=context
    )
    return out["enhancements"][SCENE.scene_number], Path(context.trace_root) / "g" / "scene_1"


async def test_a_high_scoring_version_that_lost_the_subject_is_neither_approved_nor_kept(tmp_path):
    replies = [
        tool_call_message(_draft("The lighthouse keeper trims the lamp wick")),
        tool_call_message(_critique(70)),
        tool_call_message(_draft("A sleek product on a light oak table")),
        tool_call_message(_critique(95, kept=False)),
        tool_call_message(_draft("The lighthouse keeper looks out over the dark sea")),
        tool_call_message(_critique(80)),
    ]
    result, folder = await _run(tmp_path, replies, max_enhancement_iterations=3)
    assert [i.critique.overall for i in result.iterations] == [70.0, 0.0, 80.0]
    assert result.iterations[1].critique.scores.cinematography == 95  # its scores are kept for the trace
    assert result.stop_reason == "max_iterations" and result.best_iteration == 3
    assert "lighthouse keeper" in result.final.prompt
    assert "Subject check: LOST" in (folder / layout.agent_file(2, 2)).read_text()
    assert "Subject check: kept" in (folder / layout.agent_file(3, 2)).read_text()
    assert '"subject_kept": false' in (folder / layout.PROMPT_SUMMARY).read_text()


async def test_when_every_version_lost_the_subject_a_faithful_one_is_rebuilt_and_kept(tmp_path):
    replies = [
        tool_call_message(_draft("A sleek product on a light oak table")),
        tool_call_message(_critique(90, kept=False)),
        tool_call_message(_draft("A sleek product in a bright loft")),
        tool_call_message(_critique(92, kept=False)),
    ]
    result, folder = await _run(tmp_path, replies, max_enhancement_iterations=2)
    assert len(result.iterations) == 3 and result.best_iteration == 3
    rebuilt = result.iterations[2]
    assert rebuilt.enhanced.source == "heuristic" and rebuilt.critique.subject_kept
    assert check_subject(result.final.prompt, SCENE.subject).kept
    assert any("lost the scene's subject" in e.detail for e in rebuilt.events)
    assert (folder / layout.agent_file(3, 1)).exists()
    assert "Subject check: kept" in (folder / layout.agent_file(3, 2)).read_text()
    assert "lighthouse keeper" in (folder / layout.FINAL_PROMPT).read_text()


async def test_the_offline_loop_traces_the_term_check(tmp_path):
    context = make_context(tmp_path)
    out = await enhancement_graph.ainvoke(
        EnhanceInput(generation_id="g", scene=SCENE, markers=MARKERS), context=context
    )
    result = out["enhancements"][SCENE.scene_number]
    assert all(i.critique.subject_check is not None and i.critique.subject_check.kept for i in result.iterations)
    trace = (Path(context.trace_root) / "g" / "scene_1" / layout.agent_file(1, 2)).read_text()
    assert "Subject check: kept (the prompt names the scene's subject 'the lighthouse keeper')" in trace
