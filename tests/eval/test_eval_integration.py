"""`imageforge eval` as a user meets it: its HTML report in headless Chromium with every image
loaded, and a run killed mid-way (SIGKILL, no clean-up) that resumes where it stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import CHROMEDRIVER, CHROMIUM, MISSING, headless_chromium
from typer.testing import CliRunner

from imageforge.api.cli import app

pytestmark = pytest.mark.integration  # a browser, or a killed subprocess

OFFLINE = ["--llm", "heuristic", "--scorers", "offline", "--resolution", "96", "--variations", "2"]
TESTS = Path(__file__).resolve().parents[1]


@pytest.fixture
def browser() -> Iterator[object]:
    pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip(MISSING)
    driver = headless_chromium()
    try:
        yield driver
    finally:
        driver.quit()


def test_html_report_loads_every_image_in_chromium(tmp_path, browser):
    prompts = tmp_path / "prompts.csv"
    prompts.write_text("prompt,category\na red cube,Illustrations\na capybara,Animals\nthe Alamo,World Knowledge\n")
    out = tmp_path / "eval"
    result = CliRunner().invoke(
        app, ["eval", str(prompts), "--out", str(out), "--id", "html", "--generator", "sketch", *OFFLINE]
    )
    assert result.exit_code == 0, result.output

    browser.get((out / "html" / "report.html").as_uri())
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth, i.src.split(',')[0]]);"
    )
    plots = [i for i in images if i[0].startswith(("Means", "Per-category"))]
    arms = [i for i in images if i not in plots]
    assert len(plots) == 2 and len(arms) == 12, images  # means per arm, per-category differences, 3 x 4 arms
    assert all(complete and width > 0 for _, complete, width, _ in images), images
    assert {src for *_, src in plots} == {"data:image/png;base64"}
    assert {src for *_, src in arms} == {"data:image/jpeg;base64"}
    assert "no evidence about image quality" in browser.find_element("tag name", "body").text


def _records(folder: Path) -> list[str]:
    path = folder / "results.jsonl"
    return path.read_text().splitlines() if path.is_file() else []


def test_a_killed_run_resumes_where_it_stopped(tmp_path, monkeypatch):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red cube\na capybara\nthe Alamo\na walnut\n")
    out = tmp_path / "eval"
    folder = out / "killed"
    # The sketch generator behind a sleep per call (tests/slow_generator.py), so the kill lands mid-run.
    env = {
        **os.environ,
        "IMAGEFORGE_GENERATOR__BACKEND": "slow_generator:build",
        "SLOW_GENERATOR_DELAY_S": "0.3",
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    command = [
        sys.executable,
        "-c",
        "from imageforge.api.cli import app; app()",
        "eval",
        str(prompts),
        "--out",
        str(out),
        "--id",
        "killed",
        *OFFLINE,
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while len(_records(folder)) < 3:
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            assert time.monotonic() < deadline, "the run wrote no results within 60 s"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    before = [line for line in _records(folder) if line.strip()]
    complete = []
    for line in before:
        try:
            complete.append(json.loads(line))
        except json.JSONDecodeError:  # cut mid-write by the kill
            break
    assert 3 <= len(complete) < 16, "the kill should land mid-run"

    # Resume in-process; the saved config names the slow generator, now without the sleep.
    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.setenv("SLOW_GENERATOR_DELAY_S", "0")
    result = CliRunner().invoke(app, ["eval", "--resume", "killed", "--out", str(out)])
    assert result.exit_code == 0, result.output

    after = [json.loads(line) for line in _records(folder)]
    assert len(after) == 16
    assert after[: len(complete)] == complete  # finished arms kept, not run again
    assert sorted((r["prompt_id"], r["arm"]) for r in after) == sorted(
        {(r["prompt_id"], r["arm"]) for r in after}
    )  # each prompt-arm exactly once
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["finished"] == summary["expected"] == 16
