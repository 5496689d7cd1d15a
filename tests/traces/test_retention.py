"""Retention deletes what its rules say and nothing else: old traces and uploads go, recent,
running, protected and (with keep_failed) failed ones stay; a dry run reports the same without
deleting; deletion hides a folder before removing it. Ages are set with os.utime against a fixed
clock, so nothing sleeps and every run sees the same ages."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from imageforge.traces import layout, retention
from imageforge.traces.reader import read_summary
from imageforge.traces.retention import (
    GenerationFacts,
    RetentionPolicy,
    after_run,
    decide,
    inspect_generation,
    prune,
    prune_uploads,
    sweep,
)
from imageforge.traces.schemas import RunSummary
from imageforge.traces.writer import TraceWriter

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def _set_age(path: Path, hours: float) -> None:
    """Make ``path`` and everything under it last modified ``hours`` before NOW."""
    stamp = (NOW - timedelta(hours=hours)).timestamp()
    for item in [*path.rglob("*"), path] if path.is_dir() else [path]:
        os.utime(item, (stamp, stamp))


def _trace(root: Path, generation_id: str, status: str, hours: float, *, image_bytes: int = 1000) -> Path:
    """A trace folder whose run ended (or last wrote) ``hours`` before NOW."""
    ended = NOW - timedelta(hours=hours)
    summary = RunSummary(
        generation_id=generation_id,
        status=status,
        concept="coffee",
        started_at=ended - timedelta(minutes=5),
        finished_at=None if status == "running" else ended,
    )
    TraceWriter(root, generation_id).summary(summary)
    scene = layout.scene_dir(root, generation_id, 1)
    scene.mkdir()
    (scene / layout.image_file(1)).write_bytes(b"\x89PNG" + b"x" * (image_bytes - 4))
    folder = layout.generation_dir(root, generation_id)
    _set_age(folder, hours)
    return folder


def _bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _names(entries) -> list[str]:
    return sorted(e.name for e in entries)


def _visible(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())


# Traces ----------------------------------------------------------------------------------------------


def test_old_traces_are_removed_and_recent_ones_stay(tmp_path):
    old = _trace(tmp_path, "old", "completed", 48)
    _trace(tmp_path, "new", "completed", 1)
    size = _bytes(old)

    report = prune(tmp_path, older_than=DAY, keep_failed=True, dry_run=False, now=NOW)

    assert _names(report.deleted) == ["old"] and _names(report.kept) == ["new"] and report.failed == []
    assert _visible(tmp_path) == ["new"]  # no .deleting-* left behind
    [entry] = report.deleted
    assert entry.status == "completed" and entry.kind == "trace" and entry.age == timedelta(hours=48)
    assert entry.size_bytes == size and report.bytes_freed == size > 1000
    assert "older than 24 h" in entry.reason and "younger than" in report.kept[0].reason
    assert report.deleted_count == 1 and report.kept_count == 1


def test_failed_and_cancelled_runs_survive_when_keep_failed(tmp_path):
    for status in ("failed", "cancelled", "completed"):
        _trace(tmp_path, status, status, 24 * 30)

    kept = prune(tmp_path, older_than=DAY, keep_failed=True, dry_run=False, now=NOW)
    assert _names(kept.deleted) == ["completed"] and _names(kept.kept) == ["cancelled", "failed"]
    assert all("keep_failed" in e.reason for e in kept.kept)

    gone = prune(tmp_path, older_than=DAY, keep_failed=False, dry_run=False, now=NOW)
    assert _names(gone.deleted) == ["cancelled", "failed"] and _visible(tmp_path) == []


def test_a_running_generation_is_never_deleted(tmp_path):
    _trace(tmp_path, "stuck", "running", 24 * 365)
    report = prune(tmp_path, older_than=None, keep_failed=False, dry_run=False, now=NOW)
    assert report.deleted == [] and _names(report.kept) == ["stuck"]
    assert report.kept[0].reason.startswith("running")
    assert _visible(tmp_path) == ["stuck"]


def test_dry_run_deletes_nothing_and_reports_the_same(tmp_path):
    _trace(tmp_path, "old", "completed", 48)
    _trace(tmp_path, "old-failed", "failed", 48)
    _trace(tmp_path, "new", "completed", 2)
    before = _visible(tmp_path)

    dry = prune(tmp_path, older_than=DAY, keep_failed=False, dry_run=True, now=NOW)
    assert _visible(tmp_path) == before
    real = prune(tmp_path, older_than=DAY, keep_failed=False, dry_run=False, now=NOW)

    assert dry.dry_run and not real.dry_run
    assert dry.model_dump(exclude={"dry_run"}) == real.model_dump(exclude={"dry_run"})
    assert _names(real.deleted) == ["old", "old-failed"] and _visible(tmp_path) == ["new"]


def test_protected_generations_stay(tmp_path):
    _trace(tmp_path, "live", "completed", 48)
    _trace(tmp_path, "dead", "completed", 48)
    report = prune(tmp_path, older_than=DAY, keep_failed=False, dry_run=False, now=NOW, protect={"live"})
    assert _names(report.deleted) == ["dead"] and _names(report.kept) == ["live"]
    assert report.kept[0].reason.startswith("protected")


def test_a_corrupt_or_missing_summary_is_judged_by_file_times(tmp_path):
    for name, hours in (("corrupt-old", 48), ("corrupt-new", 1)):
        (tmp_path / name).mkdir()
        (tmp_path / name / layout.SUMMARY).write_text('{"status": "failed", not json')
        _set_age(tmp_path / name, hours)
    (tmp_path / "bare-old" / "scene_1").mkdir(parents=True)  # killed before its first summary
    (tmp_path / "bare-old" / "scene_1" / layout.ORIGINAL_PROMPT).write_text("latte art")
    _set_age(tmp_path / "bare-old", 48)

    report = prune(tmp_path, older_than=DAY, keep_failed=True, dry_run=False, now=NOW)

    assert _names(report.deleted) == ["bare-old", "corrupt-old"] and _names(report.kept) == ["corrupt-new"]
    statuses = {e.name: e.status for e in report.deleted + report.kept}
    assert statuses == {"bare-old": "unknown", "corrupt-old": "corrupt", "corrupt-new": "corrupt"}
    assert all("judged by file times" in e.reason for e in report.deleted)


def test_last_activity_is_the_later_of_finished_at_and_the_newest_file(tmp_path):
    folder = _trace(tmp_path, "touched", "completed", 48)
    _set_age(folder / "scene_1" / layout.image_file(1), 2)  # a file written long after finished_at
    assert inspect_generation(folder).last_activity == NOW - timedelta(hours=2)

    summary = read_summary(tmp_path, "touched").model_copy(update={"finished_at": NOW - timedelta(hours=3)})
    TraceWriter(tmp_path, "touched").summary(summary)
    _set_age(folder, 48)  # files look old, but the run finished 3 hours ago
    assert inspect_generation(folder).last_activity == NOW - timedelta(hours=3)
    assert prune(tmp_path, older_than=DAY, keep_failed=False, dry_run=False, now=NOW).deleted == []


def test_older_than_none_is_no_age_limit(tmp_path):
    _trace(tmp_path, "fresh", "completed", 0.1)
    report = prune(tmp_path, older_than=None, keep_failed=True, dry_run=True, now=NOW)
    assert _names(report.deleted) == ["fresh"] and "no age limit" in report.deleted[0].reason


def test_deletion_hides_the_folder_first_and_the_next_prune_finishes_it(tmp_path, monkeypatch):
    _trace(tmp_path, "old", "completed", 48)
    monkeypatch.setattr(retention.shutil, "rmtree", lambda *args, **kwargs: None)  # a crash mid-delete

    first = prune(tmp_path, older_than=DAY, keep_failed=True, dry_run=False, now=NOW)

    [hidden] = tmp_path.iterdir()
    assert hidden.name.startswith(f"{layout.DELETING_PREFIX}old.")
    assert layout.list_generations(tmp_path) == [] and "next prune" in first.deleted[0].reason
    with pytest.raises(ValueError, match="generation_id"):
        read_summary(tmp_path, hidden.name)  # a half-deleted trace is never read as a trace
    monkeypatch.undo()

    dry = prune(tmp_path, older_than=DAY, keep_failed=True, dry_run=True, now=NOW)
    assert _names(dry.deleted) == [hidden.name] and hidden.exists()
    second = prune(tmp_path, older_than=DAY, keep_failed=True, dry_run=False, now=NOW)
    assert _names(second.deleted) == [hidden.name] and second.deleted[0].reason == "left by an interrupted deletion"
    assert _visible(tmp_path) == []


def test_a_refused_deletion_is_reported_and_changes_nothing(tmp_path, monkeypatch):
    _trace(tmp_path, "old", "completed", 48)

    def refuse(*args, **kwargs):
        raise PermissionError("read-only file system")

    monkeypatch.setattr(retention.os, "rename", refuse)
    report = prune(tmp_path, older_than=DAY, keep_failed=True, dry_run=False, now=NOW)
    assert report.deleted == [] and _names(report.failed) == ["old"] and report.bytes_freed == 0
    assert "read-only file system" in report.failed[0].reason and _visible(tmp_path) == ["old"]


def test_hidden_entries_and_files_are_not_traces(tmp_path):
    _trace(tmp_path, "g", "completed", 48)
    (tmp_path / ".probe-123").write_text("")
    (tmp_path / ".cache").mkdir()
    (tmp_path / "notes.txt").write_text("")
    assert layout.list_generations(tmp_path) == ["g"]
    report = prune(tmp_path, older_than=DAY, keep_failed=True, dry_run=False, now=NOW)
    assert _names(report.deleted) == ["g"] and report.kept == []
    assert _visible(tmp_path) == [".cache", ".probe-123", "notes.txt"]


def test_prune_checks_its_arguments(tmp_path):
    assert prune(tmp_path / "missing", older_than=DAY, keep_failed=True, dry_run=False).deleted == []
    with pytest.raises(ValueError, match="`now`"):
        prune(tmp_path, older_than=DAY, keep_failed=True, dry_run=True, now=datetime(2025, 6, 1))
    with pytest.raises(ValueError, match="`older_than`"):
        prune(tmp_path, older_than=-DAY, keep_failed=True, dry_run=True, now=NOW)


@pytest.mark.parametrize(
    ("status", "hours", "keep_failed", "protect", "delete", "reason"),
    [
        ("completed", 48, True, (), True, "completed, last active 2 d ago, older than 24 h"),
        ("completed", 5, True, (), False, "completed, last active 5 h ago, younger than 24 h"),
        ("completed", 48, True, ("g",), False, "protected: a live job uses it"),
        ("running", 10_000, False, (), False, "running: a running generation is never deleted"),
        ("failed", 48, True, (), False, "failed: kept for debugging (keep_failed)"),
        ("failed", 48, False, (), True, "failed, last active 2 d ago, older than 24 h"),
        (
            "corrupt",
            48,
            True,
            (),
            True,
            "unreadable summary.json (judged by file times), last active 2 d ago, older than 24 h",
        ),
    ],
)
def test_decide(status, hours, keep_failed, protect, delete, reason):
    facts = GenerationFacts(generation_id="g", status=status, last_activity=NOW - timedelta(hours=hours))
    decision = decide(facts, now=NOW, older_than=DAY, keep_failed=keep_failed, protect=protect)
    assert (decision.delete, decision.reason) == (delete, reason)


# Uploads ---------------------------------------------------------------------------------------------


def _upload(upload_dir: Path, name: str, hours: float) -> Path:
    folder = upload_dir / name
    folder.mkdir(parents=True)
    (folder / "reference.png").write_bytes(b"\x89PNG" + b"r" * 500)
    _set_age(folder, hours)
    return folder / "reference.png"


def test_old_unused_uploads_are_removed_and_others_stay(tmp_path):
    uploads = tmp_path / "uploads"
    _upload(uploads, "old", 48)
    _upload(uploads, "new", 1)
    by_path = _upload(uploads, "used-by-path", 48)
    _upload(uploads, "used-by-id", 48)
    spool = uploads / ".upload-abc.tmp"  # a spool file a crash left behind
    spool.write_bytes(b"half")
    _set_age(spool, 48)
    in_use = {str(by_path.resolve()), "used-by-id", "/elsewhere/reference.png"}

    dry = prune_uploads(uploads, older_than=DAY, in_use=in_use, dry_run=True, now=NOW)
    assert _visible(uploads) == [".upload-abc.tmp", "new", "old", "used-by-id", "used-by-path"]
    report = prune_uploads(uploads, older_than=DAY, in_use=in_use, dry_run=False, now=NOW)

    assert dry.model_dump(exclude={"dry_run"}) == report.model_dump(exclude={"dry_run"})
    assert _names(report.deleted) == [".upload-abc.tmp", "old"]
    assert _names(report.kept) == ["new", "used-by-id", "used-by-path"]
    assert report.bytes_freed == 504 + 4 and all(e.kind == "upload" and e.status is None for e in report.deleted)
    assert _visible(uploads) == ["new", "used-by-id", "used-by-path"]


# The service's entry points ------------------------------------------------------------------------


def test_sweep_applies_the_policy_to_traces_and_uploads(tmp_path):
    traces, uploads = tmp_path / "traces", tmp_path / "uploads"
    for name in ("old", "live"):
        _trace(traces, name, "completed", 48)
        _upload(uploads, name, 48)
    _trace(traces, "failed", "failed", 48)
    _trace(traces, "new", "completed", 1)

    keep = sweep(traces, RetentionPolicy(), upload_dir=uploads, now=NOW)
    assert keep.deleted == [] and keep.kept == []  # mode keep never looks

    policy = RetentionPolicy(mode="ttl", ttl_hours=24)
    report = sweep(traces, policy, upload_dir=uploads, protect={"live"}, now=NOW)

    assert [(e.kind, e.name) for e in report.deleted] == [("trace", "old"), ("upload", "old")]
    assert layout.list_generations(traces) == ["failed", "live", "new"] and _visible(uploads) == ["live"]
    assert not report.dry_run and report.bytes_freed == sum(e.size_bytes for e in report.deleted)


def test_sweep_prunes_uploads_alone_when_only_upload_ttl_is_set(tmp_path):
    _trace(tmp_path / "traces", "old", "completed", 48)
    _upload(tmp_path / "uploads", "old", 48)
    policy = RetentionPolicy(upload_ttl_hours=12)
    report = sweep(tmp_path / "traces", policy, upload_dir=tmp_path / "uploads", now=NOW)
    assert [(e.kind, e.name) for e in report.deleted] == [("upload", "old")]
    assert layout.list_generations(tmp_path / "traces") == ["old"]


def test_after_run_deletes_only_successful_runs_in_delete_on_success_mode(tmp_path):
    _trace(tmp_path, "done", "completed", 0)
    on_success = RetentionPolicy(mode="delete_on_success")
    assert not after_run(tmp_path, "done", succeeded=False, policy=on_success)
    assert not after_run(tmp_path, "done", succeeded=True, policy=RetentionPolicy(mode="ttl", ttl_hours=1))
    assert after_run(tmp_path, "done", succeeded=True, policy=on_success)
    assert _visible(tmp_path) == []
    assert not after_run(tmp_path, "done", succeeded=True, policy=on_success)  # already gone


# The policy ------------------------------------------------------------------------------------------


def test_policy_validation_names_the_field():
    with pytest.raises(ValidationError, match="ttl_hours"):
        RetentionPolicy(mode="ttl")
    with pytest.raises(ValidationError, match="only applies to mode 'ttl'"):
        RetentionPolicy(mode="keep", ttl_hours=24)
    with pytest.raises(ValidationError, match="interval_minutes"):
        RetentionPolicy(interval_minutes=0)
    with pytest.raises(ValidationError, match="ttl_hours"):
        RetentionPolicy(mode="ttl", ttl_hours=0)
    policy = RetentionPolicy(mode="ttl", ttl_hours=36, upload_ttl_hours=6, interval_minutes=15)
    assert (policy.max_age, policy.upload_max_age, policy.interval) == (
        timedelta(hours=36),
        timedelta(hours=6),
        timedelta(minutes=15),
    )
    assert RetentionPolicy(mode="ttl", ttl_hours=2).upload_max_age == timedelta(hours=2)
    assert RetentionPolicy().max_age is None and RetentionPolicy().upload_max_age is None
    with pytest.raises(ValidationError):
        policy.mode = "keep"  # frozen


def test_policy_reads_as_a_nested_settings_group(monkeypatch):
    class _Settings(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="IMAGEFORGE_", env_nested_delimiter="__")

        trace_retention: RetentionPolicy = Field(default_factory=RetentionPolicy)

    assert _Settings().trace_retention == RetentionPolicy()
    monkeypatch.setenv("IMAGEFORGE_TRACE_RETENTION__MODE", "ttl")
    monkeypatch.setenv("IMAGEFORGE_TRACE_RETENTION__TTL_HOURS", "168")
    monkeypatch.setenv("IMAGEFORGE_TRACE_RETENTION__KEEP_FAILED", "false")
    monkeypatch.setenv("IMAGEFORGE_TRACE_RETENTION__INTERVAL_MINUTES", "30")
    policy = _Settings().trace_retention
    assert policy == RetentionPolicy(mode="ttl", ttl_hours=168, keep_failed=False, interval_minutes=30)
    monkeypatch.setenv("IMAGEFORGE_TRACE_RETENTION__MODE", "keep")
    with pytest.raises(ValidationError, match="only applies to mode 'ttl'"):
        _Settings()
    assert all(field.description for field in RetentionPolicy.model_fields.values())
    assert issubclass(RetentionPolicy, BaseModel) and not issubclass(RetentionPolicy, BaseSettings)
