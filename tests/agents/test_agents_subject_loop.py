"""The enhancement loop guards faithfulness (issue 12, part 2): a version that lost the
scene's subject is never approved nor kept, and the trace shows the check."""

from __future__ import annotations

from pathlib import Path

from factories import critique, enhanced_prompt, make_context, run_enhancement
from fakes import tool_call_message

from imageforge.agents.heuristics import plan_heuristic
from imageforge.agents.subject import check_subject
from imageforge.graph.enhancement import enhancement_graph
from imageforge.graph.state import EnhanceInput
from imageforge.traces import layout

PLAN = plan_heuristic("A lighthouse keeper's last night before automation", None, 2)
SCENE, MARKERS = PLAN.scenes[0], PLAN.markers


async def test_a_high_scoring_version_that_lost_the_subject_is_neither_approved_nor_kept(tmp_path):
    replies = [
        tool_call_message(enhanced_prompt("The lighthouse keeper trims the lamp wick")),
        tool_call_message(critique(70)),
        tool_call_message(enhanced_prompt("A sleek product on a light oak table")),
        tool_call_message(critique(95, subject_kept=False)),
        tool_call_message(enhanced_prompt("The lighthouse keeper looks out over the dark sea")),
        tool_call_message(critique(80)),
    ]
    result, folder = await run_enhancement(tmp_path, SCENE, MARKERS, replies, max_enhancement_iterations=3)
    assert [i.critique.overall for i in result.iterations] == [70.0, 0.0, 80.0]
    assert result.iterations[1].critique.scores.cinematography == 95  # its scores are kept for the trace
    assert result.stop_reason == "max_iterations" and result.best_iteration == 3
    assert "lighthouse keeper" in result.final.prompt
    assert "Subject check: LOST" in (folder / layout.agent_file(2, 2)).read_text()
    assert "Subject check: kept" in (folder / layout.agent_file(3, 2)).read_text()
    assert '"subject_kept": false' in (folder / layout.PROMPT_SUMMARY).read_text()


async def test_when_every_version_lost_the_subject_a_faithful_one_is_rebuilt_and_kept(tmp_path):
    replies = [
        tool_call_message(enhanced_prompt("A sleek product on a light oak table")),
        tool_call_message(critique(90, subject_kept=False)),
        tool_call_message(enhanced_prompt("A sleek product in a bright loft")),
        tool_call_message(critique(92, subject_kept=False)),
    ]
    result, folder = await run_enhancement(tmp_path, SCENE, MARKERS, replies, max_enhancement_iterations=2)
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
