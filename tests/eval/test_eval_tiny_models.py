"""`imageforge eval` on real model code with tiny random weights: a tiny Stable Diffusion
pipeline generates, a tiny CLIP serves CLIP-score, three prompts end to end through the CLI,
with CLIP-score held out of selection so that it judges the best-of-N arms fairly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny_clip import save_tiny_clip
from tiny_models import save_tiny_sd_pipeline
from typer.testing import CliRunner

from imageforge.api.cli import app
from imageforge.api.services.evaluation.store import ARMS


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny_eval_models")
    return {"sd": save_tiny_sd_pipeline(root / "sd"), "clip": save_tiny_clip(root / "clip")}


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_three_prompts_on_tiny_models_with_a_held_out_judge(tmp_path, tiny):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red cube on top of a blue cube\na capybara sitting in a field\nthe Sydney Opera House\n")
    out = tmp_path / "eval"
    result = CliRunner().invoke(
        app,
        [
            "eval", str(prompts), "--out", str(out), "--id", "tiny",
            "--llm", "heuristic", "--generator", "diffusers", "--generator-model", str(tiny["sd"]), "--steps", "2",
            "--clip-model", str(tiny["clip"]), "--scorers", "clip-score,technical-quality",
            "--judge", "clip-score,technical-quality", "--hold-out", "clip-score",
            "--variations", "2", "--max-iterations", "1", "--max-retries", "0", "--resolution", "64",
            "--device", "cpu",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    folder = out / "tiny"
    config = json.loads((folder / "config.json").read_text())
    assert config["selection"] == ["technical-quality"] and config["held_out"] == ["clip-score"]
    assert config["resolved"]["generator"] == "diffusers"

    records = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    assert len(records) == 12 and all(r["status"] == "ok" for r in records), records
    assert all(set(r["judges"]) == {"clip-score", "technical-quality"} for r in records)
    assert all(0.0 <= v <= 100.0 for r in records for v in r["judges"].values())
    by_key = {(r["prompt_id"], r["arm"]): r for r in records}
    for pid in ("p001", "p002", "p003"):
        # Same generator, same seed, same prompt: the raw image is raw-best-of-n's first candidate.
        raw = (folder / by_key[(pid, "raw")]["image"]).read_bytes()
        first = folder / "traces" / f"{pid}-raw-best-of-n" / "scene_1" / "attempts" / "attempt_1" / "image_1.png"
        assert raw == first.read_bytes()

    summary = json.loads((folder / "summary.json").read_text())
    assert {j["name"]: j["selected"] for j in summary["judges"]} == {"clip-score": False, "technical-quality": True}
    assert set(summary["results"]["clip-score"]["arms"]) == set(ARMS)
    caveats = " ".join(summary["caveats"])
    assert "technical-quality also selected the best-of-N images" in caveats
    assert "clip-score also selected" not in caveats
    assert "Held out of selection: clip-score" in caveats
