"""`imageforge eval` offline: three prompts end to end, resuming, and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from imageforge.api.cli import app
from imageforge.api.services.evaluation.store import ARMS

runner = CliRunner()
OFFLINE = ["--llm", "heuristic", "--generator", "sketch", "--scorers", "offline", "--resolution", "96"]
PROMPTS = [
    {"prompt": "a red cube on top of a blue cube", "category": "Illustrations"},
    {"prompt": "a capybara sitting in a field", "category": "Animals"},
    {"prompt": "a lighthouse keeper's last night before automation", "category": "People"},
]


def _eval(*args: str):
    return runner.invoke(app, ["eval", *args])


@pytest.fixture
def prompt_file(tmp_path) -> Path:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS), encoding="utf-8")
    return path


def _lines(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]


def test_three_prompts_end_to_end_offline(tmp_path, prompt_file):
    result = _eval(str(prompt_file), "--out", str(tmp_path / "eval"), "--id", "run1", "--variations", "3", *OFFLINE)
    assert result.exit_code == 0, result.output
    folder = tmp_path / "eval" / "run1"

    records = _lines(folder)
    assert sorted((r["prompt_id"], r["arm"]) for r in records) == sorted(
        (f"p00{i}", arm) for i in (1, 2, 3) for arm in ARMS
    )
    assert all(r["status"] == "ok" and "technical-quality" in r["judges"] for r in records)
    by_arm = {(r["prompt_id"], r["arm"]): r for r in records}
    for pid in ("p001", "p002", "p003"):
        raw, best, enhanced, full = (by_arm[(pid, arm)] for arm in ARMS)
        assert raw["used_prompt"] == best["used_prompt"] == PROMPTS[int(pid[-1]) - 1]["prompt"]
        assert enhanced["used_prompt"] == full["used_prompt"] != raw["used_prompt"]
        assert (raw["images_generated"], best["images_generated"], enhanced["images_generated"]) == (1, 3, 1)
        assert full["images_generated"] >= 3
        assert len({r["base_seed"] for r in (raw, best, enhanced, full)}) == 1  # same seeds per prompt
        # The raw image is raw-best-of-n's first candidate (same prompt, same first seed).
        first = folder / "traces" / f"{pid}-raw-best-of-n" / "scene_1" / "attempts" / "attempt_1" / "image_1.png"
        assert (folder / raw["image"]).read_bytes() == first.read_bytes()
        assert enhanced["llm_shared_with"] == "full"

    config = json.loads((folder / "config.json").read_text())
    # No generation cache: with shared seeds it would hand later arms earlier arms' images for free.
    assert config["backends"]["generator"]["cache_dir"] is None
    assert not (tmp_path / "eval" / "cache").exists()

    summary = json.loads((folder / "summary.json").read_text())
    figures = summary["results"]["technical-quality"]
    assert figures["n"] == 3
    raw_scores = [by_arm[(p, "raw")]["judges"]["technical-quality"] for p in ("p001", "p002", "p003")]
    assert figures["arms"]["raw"]["mean"] == pytest.approx(sum(raw_scores) / 3)
    full_scores = [by_arm[(p, "full")]["judges"]["technical-quality"] for p in ("p001", "p002", "p003")]
    assert figures["vs_raw"]["full"]["difference"]["mean"] == pytest.approx(
        sum(f - r for f, r in zip(full_scores, raw_scores, strict=True)) / 3
    )
    assert set(figures["categories"]) == {"Illustrations", "Animals", "People"}
    assert summary["cost"]["raw-best-of-n"]["images"] == 9
    assert summary["judges"] == [{"name": "technical-quality", "stand_in": True, "selected": True}]

    report = (folder / "report.md").read_text()
    assert "no evidence about image quality" in report
    assert "also selected the best-of-N images" in report
    html = (folder / "report.html").read_text()
    assert html.count('src="data:image/jpeg;base64,') == 12  # every arm's image
    assert html.count('src="data:image/png;base64,') == 2  # the plots
    assert "<script" not in html and "http://" not in html and "https://" not in html


def test_resume_runs_only_the_missing_arms(tmp_path, prompt_file):
    out = tmp_path / "eval"
    assert _eval(str(prompt_file), "--out", str(out), "--id", "run2", "--variations", "2", *OFFLINE).exit_code == 0
    folder = out / "run2"
    lines = (folder / "results.jsonl").read_text().splitlines()
    kept = lines[:5]
    # Simulate a kill: seven arms never written, the last line cut mid-write.
    (folder / "results.jsonl").write_text("\n".join(kept) + "\n" + lines[5][:40], encoding="utf-8")
    kept_ids = [json.loads(line)["generation_id"] for line in kept]
    for generation_id in kept_ids:  # a finished arm whose trace is gone must not be run again
        shutil.rmtree(folder / "traces" / generation_id)

    result = _eval("--resume", "run2", "--out", str(out))
    assert result.exit_code == 0, result.output

    records = _lines(folder)
    assert len(records) == 12
    assert [json.dumps(r, separators=(",", ":")) for r in records[:5]] == [
        json.dumps(json.loads(line), separators=(",", ":")) for line in kept
    ]
    assert not any((folder / "traces" / generation_id).exists() for generation_id in kept_ids)
    assert json.loads((folder / "summary.json").read_text())["results"]["technical-quality"]["n"] == 3


def test_same_id_with_other_settings_is_refused(tmp_path, prompt_file):
    out = tmp_path / "eval"
    base = [str(prompt_file), "--out", str(out), "--id", "run3", "--limit", "1", *OFFLINE]
    assert _eval(*base, "--variations", "2").exit_code == 0
    again = _eval(*base, "--variations", "2")  # the same command again: resumes, nothing left to run
    assert again.exit_code == 0, again.output
    other = _eval(*base, "--variations", "3")
    assert other.exit_code == 2
    assert "other settings" in other.output and "--resume run3" in other.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.txt"], "no such file"),
        (["--judge", "nonsense"], "--judge: unknown scorer 'nonsense'"),
        (["--hold-out", "technical-quality"], "leaves no scorer to select with"),
        (["--judge", "pickscore"], "--judge pickscore: cannot be loaded"),
        (["--id", "bad id"], "eval_id"),
        (["--variations", "0"], "--variations"),
        (["--resume", "nothing-here"], "no evaluation there"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    result = runner.invoke(app, ["eval", *args, "--out", str(tmp_path / "eval"), *OFFLINE])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) <= 2
