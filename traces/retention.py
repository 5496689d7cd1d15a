"""How long trace folders and uploaded reference images are kept, and the code that deletes them.

Seed 004 deleted traces after every run; engineers debugging a bad storyboard need them, so
keeping is the default and deletion is an explicit policy. Three layers, each usable alone:

- ``RetentionPolicy``: the deployment's setting (nested in the service's settings as
  ``IMAGEFORGE_TRACE_RETENTION__*``).
- ``decide``: a pure function from one generation's facts to keep-or-delete, with a reason.
- ``prune`` / ``prune_uploads`` / ``sweep`` / ``after_run``: the file-system side.

Decision rules for a trace folder, first match wins:

1. its id is in ``protect`` (a job the service holds)          -> keep
2. its summary says ``running``                                -> keep, whatever its age: the
   service resumes running jobs at its next start; one left by a killed CLI run is removed by hand
3. ``keep_failed`` and its summary says ``failed``/``cancelled``  -> keep
4. ``older_than`` is set and its last activity is more recent  -> keep
5. otherwise                                                    -> delete

"Last activity" is the later of summary.json's ``finished_at`` and the newest modification time
in the folder. A folder without summary.json (``unknown``) or with one that does not parse
(``corrupt``) has only file times, and rule 3 does not protect it. ``older_than=None`` means no
age limit: every finished trace qualifies, so such a call should pass the ids of live jobs in
``protect`` (a run that has not written its first summary yet is ``unknown``).

Deleting renames the folder to a hidden ``.deleting-<name>.<hex>`` sibling (atomic within one
file system) and then removes it, so a half-deleted trace never looks like a trace; readers skip
dot names (``layout.list_generations``), and the next prune finishes what a crash left behind.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, computed_field, model_validator

from imageforge.traces import layout
from imageforge.traces.schemas import RunStatus

__all__ = [
    "Decision",
    "GenerationFacts",
    "GenerationStatus",
    "PruneEntry",
    "PruneReport",
    "RetentionPolicy",
    "after_run",
    "decide",
    "inspect_generation",
    "prune",
    "prune_uploads",
    "sweep",
]

RetentionMode = Literal["keep", "delete_on_success", "ttl"]
GenerationStatus = Literal["running", "completed", "failed", "cancelled", "unknown", "corrupt"]
"""A trace's status from summary.json; ``unknown``: no summary.json, ``corrupt``: it does not parse."""


class RetentionPolicy(BaseModel):
    """What the service deletes, and how often it looks. Every field is
    ``IMAGEFORGE_TRACE_RETENTION__<FIELD>`` in the environment (e.g. ``..._MODE=ttl``,
    ``..._TTL_HOURS=168``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: RetentionMode = Field(
        "keep",
        description="keep: never delete traces. delete_on_success: delete a trace as soon as its run completes "
        "(failed and cancelled runs stay). ttl: the periodic sweep deletes traces older than ttl_hours.",
    )
    ttl_hours: float | None = Field(
        None,
        gt=0,
        description="Mode 'ttl': hours after a run's last activity (finished_at or its newest file) before its "
        "trace is deleted. Required for 'ttl', refused with the other modes. Running runs are never deleted.",
    )
    keep_failed: bool = Field(
        True,
        description="Mode 'ttl': keep the traces of failed and cancelled runs whatever their age "
        "(engineers debug those). False lets them expire like completed ones.",
    )
    upload_ttl_hours: float | None = Field(
        None,
        gt=0,
        description="Hours before an uploaded reference image that no queued or running job uses is deleted. "
        "Unset: ttl_hours in mode 'ttl', uploads kept in the other modes.",
    )
    interval_minutes: int = Field(
        60, ge=1, le=7 * 24 * 60, description="Minutes between two sweeps of traces and uploads by the service."
    )

    @model_validator(mode="after")
    def _ttl_hours_match_mode(self) -> RetentionPolicy:
        if self.mode == "ttl" and self.ttl_hours is None:
            raise ValueError("`ttl_hours` is required when retention `mode` is 'ttl'")
        if self.mode != "ttl" and self.ttl_hours is not None:
            raise ValueError(
                f"`ttl_hours` ({self.ttl_hours}) only applies to mode 'ttl', got mode {self.mode!r}; "
                "set mode 'ttl' or drop ttl_hours"
            )
        return self

    @property
    def max_age(self) -> timedelta | None:
        """Age past which the sweep deletes a trace; None when the sweep deletes no trace."""
        return timedelta(hours=self.ttl_hours) if self.mode == "ttl" and self.ttl_hours is not None else None

    @property
    def upload_max_age(self) -> timedelta | None:
        """Age past which the sweep deletes an unused upload; None when it keeps uploads."""
        hours = self.upload_ttl_hours if self.upload_ttl_hours is not None else self.ttl_hours
        return timedelta(hours=hours) if hours is not None else None

    @property
    def interval(self) -> timedelta:
        return timedelta(minutes=self.interval_minutes)


# Decisions ------------------------------------------------------------------------------------------


class GenerationFacts(BaseModel):
    """What the decision needs to know about one trace folder (``inspect_generation`` gathers it)."""

    model_config = ConfigDict(frozen=True)

    generation_id: str
    status: GenerationStatus
    last_activity: datetime = Field(description="Later of summary finished_at and the newest file time; aware.")
    size_bytes: int = Field(0, ge=0)


class Decision(BaseModel):
    model_config = ConfigDict(frozen=True)

    delete: bool
    reason: str


def decide(
    facts: GenerationFacts,
    *,
    now: datetime,
    older_than: timedelta | None,
    keep_failed: bool,
    protect: Collection[str] = (),
) -> Decision:
    """Keep or delete one trace folder, and why (the rules are in the module docstring). Pure."""
    if facts.generation_id in protect:
        return Decision(delete=False, reason="protected: a live job uses it")
    if facts.status == "running":
        return Decision(delete=False, reason="running: a running generation is never deleted")
    if keep_failed and facts.status in ("failed", "cancelled"):
        return Decision(delete=False, reason=f"{facts.status}: kept for debugging (keep_failed)")
    age = _age(now, facts.last_activity)
    what = _describe(facts.status)
    if older_than is not None and age < older_than:
        return Decision(
            delete=False, reason=f"{what}, last active {_human(age)} ago, younger than {_human(older_than)}"
        )
    limit = f"older than {_human(older_than)}" if older_than is not None else "no age limit"
    return Decision(delete=True, reason=f"{what}, last active {_human(age)} ago, {limit}")


def _describe(status: GenerationStatus) -> str:
    if status == "unknown":
        return "no summary.json (judged by file times)"
    if status == "corrupt":
        return "unreadable summary.json (judged by file times)"
    return status


def _age(now: datetime, then: datetime) -> timedelta:
    return max(now - _aware(then), timedelta(0))


def _aware(moment: datetime) -> datetime:
    """Trace times are UTC; a naive one (an older writer) is read as UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _human(span: timedelta) -> str:
    """``45 s``, ``12 min``, ``5 h``, ``2.5 d``."""
    seconds = span.total_seconds()
    for unit, size, below in (("s", 1, 120), ("min", 60, 2 * 3600), ("h", 3600, 2 * 86400)):
        if seconds < below:
            return f"{_number(seconds / size)} {unit}"
    return f"{_number(seconds / 86400)} d"


def _number(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


# Facts from disk ------------------------------------------------------------------------------------


class _SummaryHead(BaseModel):
    """The two fields retention reads; the rest of summary.json may drift between versions."""

    status: RunStatus
    finished_at: datetime | None = None


def _walk(path: Path) -> tuple[int, float]:
    """Bytes in the files under ``path`` (or of the file itself) and the newest modification time."""
    stat = path.lstat()
    if not path.is_dir() or path.is_symlink():
        return stat.st_size, stat.st_mtime
    size, newest = 0, stat.st_mtime
    for folder, dirs, files in os.walk(path):
        for name, is_file in [(d, False) for d in dirs] + [(f, True) for f in files]:
            try:
                entry = os.lstat(os.path.join(folder, name))
            except FileNotFoundError:  # removed while we looked
                continue
            newest = max(newest, entry.st_mtime)
            size += entry.st_size if is_file else 0
    return size, newest


def inspect_generation(folder: str | Path) -> GenerationFacts:
    """Status, last activity and size of one trace folder, read from disk."""
    folder = Path(folder)
    size, newest = _walk(folder)
    last = datetime.fromtimestamp(newest, UTC)
    summary = folder / layout.SUMMARY
    status: GenerationStatus
    try:
        head = _SummaryHead.model_validate_json(summary.read_bytes())
    except FileNotFoundError:
        status = "unknown"
    except (OSError, ValidationError, ValueError):
        status = "corrupt"
    else:
        status = head.status
        if head.finished_at is not None:
            last = max(last, _aware(head.finished_at))
    return GenerationFacts(generation_id=folder.name, status=status, last_activity=last, size_bytes=size)


# Reports --------------------------------------------------------------------------------------------


class PruneEntry(BaseModel):
    """One trace folder or upload that a prune looked at."""

    kind: Literal["trace", "upload"]
    name: str = Field(description="The generation id (trace folders and upload folders), or the upload's file name.")
    path: Path
    status: GenerationStatus | None = Field(None, description="Traces only: the run's status from summary.json.")
    last_activity: datetime
    age: timedelta
    size_bytes: int = Field(description="Bytes of its files: what deleting it frees.")
    reason: str


class PruneReport(BaseModel):
    """What a prune deleted (or, in a dry run, would delete), kept, and failed to delete."""

    dry_run: bool
    deleted: list[PruneEntry] = Field(default_factory=list, description="Deleted, or would be in a dry run.")
    kept: list[PruneEntry] = Field(default_factory=list)
    failed: list[PruneEntry] = Field(
        default_factory=list, description="Chosen for deletion but the file system refused; the reason says why."
    )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def bytes_freed(self) -> int:
        """Bytes of the deleted entries (would be freed, in a dry run)."""
        return sum(e.size_bytes for e in self.deleted)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def deleted_count(self) -> int:
        return len(self.deleted)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def kept_count(self) -> int:
        return len(self.kept)

    def merge(self, other: PruneReport) -> PruneReport:
        """Both reports' entries in one (the sweep's traces and uploads)."""
        return PruneReport(
            dry_run=self.dry_run and other.dry_run,
            deleted=self.deleted + other.deleted,
            kept=self.kept + other.kept,
            failed=self.failed + other.failed,
        )


# Deleting -------------------------------------------------------------------------------------------


def _remove(path: Path) -> bool:
    """Rename ``path`` to a hidden ``.deleting-`` sibling, then remove it. False when cleanup is left over.

    Raises OSError when the rename fails (permissions, already gone): then nothing changed.
    """
    hidden = path.with_name(f"{layout.DELETING_PREFIX}{path.name}.{uuid.uuid4().hex[:8]}")
    os.rename(path, hidden)
    return _remove_hidden(hidden)


def _remove_hidden(hidden: Path) -> bool:
    if hidden.is_dir() and not hidden.is_symlink():
        shutil.rmtree(hidden, ignore_errors=True)
    else:
        hidden.unlink(missing_ok=True)
    return not os.path.lexists(hidden)


def _check_now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError(f"`now` must be timezone-aware, got {now!r}")
    return now


def _apply(report: PruneReport, entry: PruneEntry, delete: bool) -> None:
    """File ``entry`` under kept, deleted or failed, deleting it unless the report is a dry run."""
    if not delete:
        report.kept.append(entry)
        return
    if report.dry_run:
        report.deleted.append(entry)
        return
    try:
        finished = _remove(entry.path)
    except OSError as exc:
        report.failed.append(entry.model_copy(update={"reason": f"{entry.reason}; could not delete: {exc}"}))
        return
    if not finished:
        entry = entry.model_copy(update={"reason": f"{entry.reason}; the next prune finishes removing it"})
    report.deleted.append(entry)


def _leftovers(root: Path, kind: Literal["trace", "upload"], now: datetime, report: PruneReport) -> None:
    """Finish deletions a crash interrupted: ``.deleting-*`` entries are already committed to go."""
    for path in sorted(root.glob(f"{layout.DELETING_PREFIX}*")):
        try:
            size, newest = _walk(path)
        except FileNotFoundError:
            continue
        last = datetime.fromtimestamp(newest, UTC)
        entry = PruneEntry(
            kind=kind,
            name=path.name,
            path=path,
            last_activity=last,
            age=_age(now, last),
            size_bytes=size,
            reason="left by an interrupted deletion",
        )
        if report.dry_run or _remove_hidden(path):
            report.deleted.append(entry)
        else:
            report.failed.append(entry.model_copy(update={"reason": f"{entry.reason}; could not remove it"}))


def prune(
    root: str | Path,
    *,
    older_than: timedelta | None,
    keep_failed: bool,
    dry_run: bool,
    now: datetime | None = None,
    protect: Collection[str] = (),
) -> PruneReport:
    """Delete the trace folders under ``root`` that ``decide`` gives up; report every folder looked at.

    ``older_than=None`` is no age limit. ``protect`` holds generation ids never to delete (the
    service's live jobs). A dry run deletes nothing and returns the same report. Hidden entries
    are not traces; ``.deleting-*`` ones left by a crash are removed (and reported as deleted).
    """
    if older_than is not None and older_than < timedelta(0):
        raise ValueError(f"`older_than` must not be negative, got {older_than!r}")
    now = _check_now(now)
    root = Path(root)
    report = PruneReport(dry_run=dry_run)
    if not root.is_dir():
        return report
    _leftovers(root, "trace", now, report)
    protected = frozenset(protect)
    for name in layout.list_generations(root):
        try:
            facts = inspect_generation(root / name)
        except FileNotFoundError:  # deleted by someone else meanwhile
            continue
        decision = decide(facts, now=now, older_than=older_than, keep_failed=keep_failed, protect=protected)
        entry = PruneEntry(
            kind="trace",
            name=name,
            path=root / name,
            status=facts.status,
            last_activity=facts.last_activity,
            age=_age(now, facts.last_activity),
            size_bytes=facts.size_bytes,
            reason=decision.reason,
        )
        _apply(report, entry, decision.delete)
    return report


def _in_use_names(upload_dir: Path, in_use: Collection[str]) -> set[str]:
    """Top-level entry names of ``upload_dir`` that ``in_use`` names: plain names, or paths inside it."""
    base = upload_dir.resolve()
    names = set()
    for item in in_use:
        if "/" not in item and "\\" not in item:
            names.add(item)
            continue
        resolved = Path(item).resolve()
        if resolved.is_relative_to(base) and resolved != base:
            names.add(resolved.relative_to(base).parts[0])
    return names


def prune_uploads(
    upload_dir: str | Path,
    *,
    older_than: timedelta,
    in_use: Collection[str],
    dry_run: bool,
    now: datetime | None = None,
) -> PruneReport:
    """Delete uploads (``<upload_dir>/<generation_id>/reference.png`` folders, stray spool files) whose
    newest file is older than ``older_than`` and that ``in_use`` does not name.

    ``in_use`` holds generation ids or upload file names, or paths inside ``upload_dir`` (a live
    generation's reference image path, absolute or relative to the working directory); each
    protects the top-level entry it falls in.
    """
    if older_than < timedelta(0):
        raise ValueError(f"`older_than` must not be negative, got {older_than!r}")
    now = _check_now(now)
    upload_dir = Path(upload_dir)
    report = PruneReport(dry_run=dry_run)
    if not upload_dir.is_dir():
        return report
    _leftovers(upload_dir, "upload", now, report)
    used = _in_use_names(upload_dir, in_use)
    for path in sorted(upload_dir.iterdir()):
        if path.name.startswith(layout.DELETING_PREFIX):
            continue
        try:
            size, newest = _walk(path)
        except FileNotFoundError:
            continue
        last = datetime.fromtimestamp(newest, UTC)
        age = _age(now, last)
        if path.name in used:
            delete, reason = False, "in use by a live generation"
        elif age < older_than:
            delete, reason = False, f"last changed {_human(age)} ago, younger than {_human(older_than)}"
        else:
            delete, reason = True, f"unused, last changed {_human(age)} ago, older than {_human(older_than)}"
        entry = PruneEntry(
            kind="upload", name=path.name, path=path, last_activity=last, age=age, size_bytes=size, reason=reason
        )
        _apply(report, entry, delete)
    return report


# The two entry points of the service ----------------------------------------------------------------


def after_run(root: str | Path, generation_id: str, *, succeeded: bool, policy: RetentionPolicy) -> bool:
    """Apply mode ``delete_on_success`` to a finished run's folder; True when it was deleted.

    Raises OSError when the folder exists but cannot be renamed away (nothing is deleted then).
    """
    if policy.mode != "delete_on_success" or not succeeded:
        return False
    folder = layout.generation_dir(root, generation_id)
    try:
        _remove(folder)
    except FileNotFoundError:
        return False
    return True


def sweep(
    root: str | Path,
    policy: RetentionPolicy,
    *,
    upload_dir: str | Path | None = None,
    in_use: Collection[str] = (),
    protect: Collection[str] = (),
    now: datetime | None = None,
) -> PruneReport:
    """One scheduled pass of ``policy``: expired traces (mode 'ttl') and unused old uploads.

    ``protect``: generation ids of the service's queued and running jobs; their traces and upload
    folders stay. ``in_use``: further uploads to keep (see ``prune_uploads``). Never a dry run.
    """
    report = PruneReport(dry_run=False)
    if policy.max_age is not None:
        report = prune(
            root, older_than=policy.max_age, keep_failed=policy.keep_failed, dry_run=False, now=now, protect=protect
        )
    if upload_dir is not None and policy.upload_max_age is not None:
        uploads = prune_uploads(
            upload_dir, older_than=policy.upload_max_age, in_use={*in_use, *protect}, dry_run=False, now=now
        )
        report = report.merge(uploads)
    return report
