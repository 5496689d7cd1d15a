"""`imageforge generate` end to end, and its answers to bad input."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from imageforge.api.cli import app
from imageforge.traces import layout

runner = CliRunner()
FAST = ["--variations", "2", "--resolution", "96", "--seed", "11", "--llm", "heuristic", "--generator", "sketch"]


def _generate(*args: str):
    return runner.invoke(app, ["generate", *args])


def test_generate_writes_every_trace_file_and_chains_scenes(tmp_path):
    reference = tmp_path / "ref.png"
    Image.new("RGB", (80, 60), (180, 120, 60)).save(reference)
    out = tmp_path / "out"
    result = _generate(
        "Artisan coffee that starts your morning right",
        "--scenes",
        "3",
        "--reference",
        str(reference),
        "--out",
        str(out),
        "--json",
        *FAST,
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["status"] == "completed"
    folder = out / "reference_image_traces" / document["generation_id"]
    assert (folder / layout.SUMMARY).is_file()

    scenes = document["scenes"]
    assert [s["scene_number"] for s in scenes] == [1, 2, 3]
    # Scene 1 used the user's image; scene k+1 used scene k's winner first.
    assert scenes[0]["attempts"][0]["reference"]["path"] == str(reference.resolve())
    for previous, scene in itertools.pairwise(scenes):
        assert scene["attempts"][0]["reference"]["path"] == previous["winner_path"]

    for enhancement, scene in zip(document["enhancements"], scenes, strict=False):
        scene_folder = folder / f"scene_{scene['scene_number']}"
        iterations = len(enhancement["iterations"])
        assert 1 <= iterations <= 4
        for i in range(1, iterations + 1):
            assert (scene_folder / layout.agent_file(i, 1)).read_text().startswith("Agent 1 (cinematographer)")
            assert (scene_folder / layout.agent_file(i, 2)).read_text().startswith("Agent 2 (prompt engineer)")
        assert (scene_folder / layout.ORIGINAL_PROMPT).read_text().strip() == enhancement["original_prompt"]
        assert (scene_folder / layout.FINAL_PROMPT).read_text().strip() == scene["enhanced_prompt"]
        summary = json.loads((scene_folder / layout.PROMPT_SUMMARY).read_text())
        assert len(summary["iterations"]) == iterations
        assert set(summary["iterations"][0]["critique"]["scores"]) == {
            "completeness",
            "specificity",
            "professionalism",
            "cinematography",
            "brand_alignment",
        }
        for index in (1, 2):
            with Image.open(scene_folder / f"image_{index}.png") as image:
                assert image.size == (96, 96)
        scores = json.loads((scene_folder / layout.QUALITY_SCORES).read_text())
        assert sum(len(a["variations"]) for a in scores["attempts"]) == 2 * len(scene["attempts"])
        assert {v["rank"] for v in scores["attempts"][0]["variations"]} == {1, 2}
        best = (scene_folder / layout.SELECTED_BEST).read_text()
        assert f"image_{scene['winner']['index']}.png" in best and "margin" in best
        assert Path(scene["winner_path"]).parent == scene_folder


def test_table_output_names_backends_and_the_trace(tmp_path):
    result = _generate("Tech startup product showcase", "--scenes", "1", "--out", str(tmp_path), *FAST)
    assert result.exit_code == 0, result.output
    assert "Generator: sketch" in result.output
    assert "Effective weights: aesthetic 1.00" in result.output
    assert "Trace: " in result.output


def _assert_usage_error(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    for needle in needles:
        assert needle in lines[0]
    assert "Traceback" not in result.output


def test_out_of_range_settings_are_one_line_exit_2(tmp_path):
    out = tmp_path / "out"
    _assert_usage_error(_generate("coffee", "--variations", "17", "--out", str(out)), "--variations", "16")
    _assert_usage_error(_generate("coffee", "--max-iterations", "0", "--out", str(out)), "--max-iterations")
    _assert_usage_error(_generate("coffee", "--approval-threshold", "101", "--out", str(out)), "--approval-threshold")
    _assert_usage_error(_generate("coffee", "--max-retries", "9", "--out", str(out)), "--max-retries")
    _assert_usage_error(_generate("coffee", "--aspect-ratio", "3:2", "--out", str(out)), "--aspect-ratio")
    _assert_usage_error(_generate("", "--out", str(out)), "CONCEPT")
    assert not out.exists()  # nothing half-written


def test_bad_reference_files_are_rejected_before_any_work(tmp_path):
    out = tmp_path / "out"
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    truncated = tmp_path / "cut.png"
    Image.new("RGB", (64, 64), (1, 2, 3)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:40])
    for path in (text, truncated, tmp_path / "missing.png"):
        _assert_usage_error(_generate("coffee", "--reference", str(path), "--out", str(out)), "--reference")
    assert not out.exists()


def test_unwritable_output_directory_is_rejected(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    _assert_usage_error(_generate("coffee", "--out", str(blocker / "sub"), *FAST), "--out", "cannot write")


def test_a_named_scorer_without_weights_is_a_usage_error(tmp_path):
    _assert_usage_error(
        _generate("coffee", "--scorers", "pickscore", "--out", str(tmp_path), *FAST), "pickscore", "cannot be loaded"
    )
    _assert_usage_error(
        _generate("coffee", "--consistency", "dinov2", "--out", str(tmp_path), *FAST), "--consistency-model"
    )
    _assert_usage_error(_generate("coffee", "--steps", "0", "--out", str(tmp_path), *FAST), "--steps")
