"""Trace writing is atomic, the reader loads what the writer wrote, retention deletes only
what its policy says."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

import pytest

from imageforge.agents.schemas import (
    AgentEvent,
    Critique,
    DimensionScores,
    EnhancedPrompt,
    EnhancementResult,
    Iteration,
)
from imageforge.traces import layout
from imageforge.traces.reader import CorruptTraceError, TraceNotFoundError, read_trace, resolve_trace_file
from imageforge.traces.retention import RetentionPolicy, after_run, sweep
from imageforge.traces.schemas import RunSummary
from imageforge.traces.writer import TraceWriter


def _enhancement(scene: int = 1) -> EnhancementResult:
    enhanced = EnhancedPrompt(
        prompt="Barista pours latte art, medium close-up",
        shot_type="medium close-up",
        camera_angle="eye-level",
        lens="85mm",
        aperture="f/1.8",
        lighting="window light from the left",
        color_temperature_k=4500,
        composition="rule of thirds",
        palette=["cream", "espresso brown"],
    )
    scores = DimensionScores(completeness=90, specificity=88, professionalism=86, cinematography=92, brand_alignment=80)
    critique = Critique(scores=scores, critique="Strong.", suggestions=["Name the cup's material."])
    iteration = Iteration(
        iteration=1,
        enhanced=enhanced,
        critique=critique,
        events=[AgentEvent(agent="prompt_engineer", kind="parse_retry", detail="bad json")],
    )
    return EnhancementResult(
        scene_number=scene,
        original_prompt="latte art",
        iterations=[iteration],
        best_iteration=1,
        approval_threshold=85,
        stop_reason="approved",
    )


def _summary(generation_id: str, **kw) -> RunSummary:
    return RunSummary(
        generation_id=generation_id,
        status="running",
        concept="coffee",
        started_at=datetime.now(UTC),
        **kw,
    )


def test_agent_files_follow_the_seed_004_numbering(tmp_path):
    writer = TraceWriter(tmp_path, "g1")
    result = _enhancement()
    writer.original_prompt(1, "latte art")
    writer.cinematographer(1, 1, result.iterations[0].enhanced, [])
    writer.prompt_engineer(1, 1, result.iterations[0].critique, 85, result.iterations[0].events)
    writer.cinematographer(1, 2, result.iterations[0].enhanced, [])
    writer.enhancement(result)
    names = sorted(p.name for p in (tmp_path / "g1" / "scene_1").iterdir())
    assert names == [
        "00_original_prompt.txt",
        "01_agent1_iteration_1.txt",
        "02_agent2_iteration_1.txt",
        "03_agent1_iteration_2.txt",
        "final_enhanced_prompt.txt",
        "prompt_trace_summary.json",
    ]
    critique_text = (tmp_path / "g1" / "scene_1" / "02_agent2_iteration_1.txt").read_text()
    assert "APPROVED" in critique_text and "parse_retry" in critique_text and "cinematography" in critique_text


def test_reader_round_trips_and_merges_scene_files_newer_than_the_summary(tmp_path):
    writer = TraceWriter(tmp_path, "g2")
    writer.summary(_summary("g2"))
    writer.enhancement(_enhancement(1))  # written after summary.json, as after a crash
    document = read_trace(tmp_path, "g2")
    assert document.summary.enhancements == [_enhancement(1)]
    assert "summary.json" in document.files and "scene_1/prompt_trace_summary.json" in document.files


def test_reader_errors_name_the_problem(tmp_path):
    with pytest.raises(TraceNotFoundError):
        read_trace(tmp_path, "missing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / layout.SUMMARY).write_text("{not json")
    with pytest.raises(CorruptTraceError, match=r"summary\.json"):
        read_trace(tmp_path, "bad")
    with pytest.raises(ValueError, match="generation_id"):
        read_trace(tmp_path, "../etc")


def test_resolve_trace_file_refuses_traversal(tmp_path):
    writer = TraceWriter(tmp_path, "g3")
    writer.summary(_summary("g3"))
    (tmp_path / "secret.txt").write_text("no")
    assert resolve_trace_file(tmp_path, "g3", "summary.json").name == "summary.json"
    for bad in ("../secret.txt", "/etc/passwd", "scene_1/../../secret.txt", "."):
        with pytest.raises(ValueError):
            resolve_trace_file(tmp_path, "g3", bad)
    with pytest.raises(TraceNotFoundError):
        resolve_trace_file(tmp_path, "g3", "scene_9/image_1.png")


def test_writes_are_atomic_and_leave_no_temporary_files(tmp_path, monkeypatch):
    writer = TraceWriter(tmp_path, "g4")
    writer.summary(_summary("g4"))
    before = (tmp_path / "g4" / layout.SUMMARY).read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        writer.summary(_summary("g4", warnings=["new"]))
    monkeypatch.undo()
    assert (tmp_path / "g4" / layout.SUMMARY).read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "g4").iterdir()) == [layout.SUMMARY]


def test_retention_policies(tmp_path):
    for name in ("old", "new", "done"):
        TraceWriter(tmp_path, name).summary(_summary(name).model_copy(update={"status": "completed"}))
    old = time.time() - 3 * 3600
    for path in (tmp_path / "old", tmp_path / "old" / layout.SUMMARY):
        os.utime(path, (old, old))
    assert [e.path for e in sweep(tmp_path, RetentionPolicy(mode="ttl", ttl_hours=2)).deleted] == [tmp_path / "old"]
    assert sweep(tmp_path, RetentionPolicy(mode="keep")).deleted == []
    assert not after_run(tmp_path, "done", succeeded=False, policy=RetentionPolicy(mode="delete_on_success"))
    assert after_run(tmp_path, "done", succeeded=True, policy=RetentionPolicy(mode="delete_on_success"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new"]
    with pytest.raises(ValueError, match="ttl_hours"):
        RetentionPolicy(mode="ttl")
