"""How long trace folders are kept: forever, until the run succeeds, or for a time to live.

Seed 004 deleted traces after every run; engineers debugging a bad storyboard need them,
so keeping is the default and deletion is an explicit policy.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from imageforge.traces import layout


class RetentionPolicy(BaseModel):
    mode: Literal["keep", "delete_on_success", "ttl"] = "keep"
    ttl_hours: float | None = Field(None, gt=0, description="Required for mode 'ttl'.")

    @model_validator(mode="after")
    def _ttl_needs_hours(self) -> RetentionPolicy:
        if self.mode == "ttl" and self.ttl_hours is None:
            raise ValueError("`ttl_hours` is required when retention mode is 'ttl'")
        return self


def after_run(root: str | Path, generation_id: str, *, succeeded: bool, policy: RetentionPolicy) -> bool:
    """Apply the policy to a finished run's folder; True when it was deleted."""
    if policy.mode == "delete_on_success" and succeeded:
        shutil.rmtree(layout.generation_dir(root, generation_id), ignore_errors=True)
        return True
    return False


def expired(root: str | Path, policy: RetentionPolicy, *, now: float | None = None) -> list[Path]:
    """Generation folders whose summary is older than the time to live."""
    if policy.mode != "ttl" or policy.ttl_hours is None:
        return []
    cutoff = (time.time() if now is None else now) - policy.ttl_hours * 3600
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for folder in root.iterdir():
        summary = folder / layout.SUMMARY
        stamp = summary.stat().st_mtime if summary.exists() else folder.stat().st_mtime
        if folder.is_dir() and stamp < cutoff:
            found.append(folder)
    return sorted(found)


def sweep(root: str | Path, policy: RetentionPolicy, *, now: float | None = None) -> list[Path]:
    """Delete expired generation folders; returns what was deleted."""
    folders = expired(root, policy, now=now)
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    return folders
