"""`imageforge traces prune` and the service's retention sweep: old traces and uploads go,
recent ones, failed ones (by default) and running ones stay."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from imageforge.api.cli import app as cli
from imageforge.api.main import create_app
from imageforge.traces import layout
from tests.api.support import FakePipeline, make_settings

DAY = 86400


def _trace(root: Path, generation_id: str, status: str, age_days: float) -> Path:
    folder = layout.generation_dir(root, generation_id)
    (folder / "scene_1").mkdir(parents=True)
    (folder / "scene_1" / "image_1.png").write_bytes(b"x" * 100)
    finished = datetime.now(UTC) - timedelta(days=age_days)
    summary = {"generation_id": generation_id, "status": status, "finished_at": finished.isoformat()}
    (folder / layout.SUMMARY).write_text(json.dumps(summary))
    _age(folder, age_days)
    return folder


def _upload(upload_dir: Path, generation_id: str, age_days: float) -> Path:
    folder = upload_dir / generation_id
    folder.mkdir(parents=True)
    (folder / "reference.png").write_bytes(b"png")
    _age(folder, age_days)
    return folder


def _age(folder: Path, age_days: float) -> None:
    stamp = time.time() - age_days * DAY
    for path in [*folder.rglob("*"), folder]:
        os.utime(path, (stamp, stamp))


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.chdir(tmp_path)  # no service database here: nothing is live
    root, uploads = tmp_path / "traces", tmp_path / "uploads"
    _trace(root, "old-done", "completed", 30)
    _trace(root, "old-failed", "failed", 30)
    _trace(root, "old-running", "running", 30)
    _trace(root, "new-done", "completed", 1)
    _upload(uploads, "old-done", 30)
    _upload(uploads, "new-done", 1)
    return root, uploads


def _prune(root: Path, uploads: Path, *args: str):
    return CliRunner().invoke(cli, ["traces", "prune", "--root", str(root), "--upload-dir", str(uploads), *args])


def test_a_dry_run_reports_and_deletes_nothing(tree: tuple[Path, Path]) -> None:
    root, uploads = tree
    result = _prune(root, uploads, "--older-than", "7d", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert sorted((e["kind"], e["name"]) for e in report["deleted"]) == [("trace", "old-done"), ("upload", "old-done")]
    assert {p.name for p in root.iterdir()} == {"old-done", "old-failed", "old-running", "new-done"}
    assert {p.name for p in uploads.iterdir()} == {"old-done", "new-done"}


def test_prune_removes_old_traces_and_uploads_and_keeps_the_rest(tree: tuple[Path, Path]) -> None:
    root, uploads = tree
    result = _prune(root, uploads, "--older-than", "7d")
    assert result.exit_code == 0, result.output
    assert "deleted: 2" in result.output
    assert {p.name for p in root.iterdir()} == {"old-failed", "old-running", "new-done"}
    assert {p.name for p in uploads.iterdir()} == {"new-done"}
    again = _prune(root, uploads, "--older-than", "7d", "--delete-failed")
    assert again.exit_code == 0, again.output
    assert {p.name for p in root.iterdir()} == {"old-running", "new-done"}  # running is never deleted


@pytest.mark.parametrize("age", ["soon", "-3d", "7y"])
def test_a_bad_age_is_one_error_line_and_exit_2(tree: tuple[Path, Path], age: str) -> None:
    root, uploads = tree
    result = _prune(root, uploads, "--older-than", age)
    assert result.exit_code == 2 and "--older-than" in result.output
    assert {p.name for p in root.iterdir()} == {"old-done", "old-failed", "old-running", "new-done"}


def test_the_service_sweeps_on_start_and_keeps_live_generations(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, trace_retention={"mode": "ttl", "ttl_hours": 24 * 7, "keep_failed": True, "interval_minutes": 60}
    )
    _trace(settings.trace_root, "old-done", "completed", 30)
    _trace(settings.trace_root, "old-failed", "failed", 30)
    _trace(settings.trace_root, "new-done", "completed", 1)
    _upload(settings.upload_dir, "old-upload", 30)
    with TestClient(create_app(settings, pipeline=FakePipeline(settings.trace_root, scenes=1))):
        deadline = time.monotonic() + 10
        while (settings.trace_root / "old-done").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    assert {p.name for p in settings.trace_root.iterdir()} == {"old-failed", "new-done"}
    assert not (settings.upload_dir / "old-upload").exists()
