"""One scene-count rule: the planner's maximum and duration -> scenes function, shared by the
estimate endpoint, the request schemas and the CLI. Over the limit is refused, never replaced."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from imageforge.agents.heuristics import MAX_SCENES, plan_heuristic
from imageforge.api.cli import app as cli
from imageforge.api.services.estimate import EstimateQuery, estimate
from tests.api.support import add_user, make_settings

DURATIONS = [*range(1, 601), 0.5, 1.9, 5.6, 7.5, 11.25, 599.9]


def test_the_estimate_and_the_planner_agree_for_every_duration(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    planned = {duration: len(plan_heuristic("artisan coffee", duration).scenes) for duration in DURATIONS}
    estimated = {duration: estimate(EstimateQuery(target_duration=duration), settings).scenes for duration in DURATIONS}
    assert estimated == planned
    assert min(planned.values()) == 1 and max(planned.values()) == MAX_SCENES


def test_the_estimate_without_a_duration_matches_the_default_plan(tmp_path: Path) -> None:
    assert estimate(EstimateQuery(), make_settings(tmp_path)).scenes == len(plan_heuristic("artisan coffee").scenes)


def test_over_the_limit_is_a_422_naming_it(client: TestClient) -> None:
    headers = add_user(client, "limits@example.com")
    too_many = client.post("/api/generate", json={"prompt": "coffee", "num_scenes": MAX_SCENES + 3}, headers=headers)
    assert too_many.status_code == 422 and str(MAX_SCENES) in too_many.text
    scenes = [f"scene {k}" for k in range(1, MAX_SCENES + 2)]
    explicit = client.post("/api/generate", json={"prompt": "coffee", "scenes": scenes}, headers=headers)
    assert explicit.status_code == 422 and str(MAX_SCENES) in explicit.text
    estimate_reply = client.get("/api/estimate", params={"num_scenes": MAX_SCENES + 1})
    assert estimate_reply.status_code == 422 and str(MAX_SCENES) in estimate_reply.text
    at_limit = client.post("/api/generate", json={"prompt": "coffee", "num_scenes": MAX_SCENES}, headers=headers)
    assert at_limit.status_code == 202, at_limit.text


def test_the_cli_refuses_over_the_limit_with_exit_code_2(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "out"
    common = ["--llm", "heuristic", "--generator", "sketch", "--scorers", "offline", "--out", str(out)]
    result = runner.invoke(cli, ["generate", "coffee", "--scenes", str(MAX_SCENES + 3), *common])
    assert result.exit_code == 2 and "--scenes" in result.output and str(MAX_SCENES) in result.output
    scene_flags = [flag for k in range(MAX_SCENES + 1) for flag in ("--scene", f"shot {k}")]
    result = runner.invoke(cli, ["generate", "coffee", *scene_flags, *common])
    assert result.exit_code == 2 and "--scene" in result.output
    assert not any((out / "reference_image_traces").glob("*")), "nothing is written for a refused request"
