"""A per-user storage quota on top of retention (``Settings.user_storage_quota_bytes``).

Retention removes old traces on a schedule, but between two sweeps one user could fill the disk
(issue 10: traces grew 734 MB in 15 minutes of load). So a submission or an upload is refused
with a 413 once the user's bytes on disk reach the quota: their trace folders, their uploaded
references and their characters' files. The figure is measured from the folders themselves
(hard links, as trace images are, counted once) and kept for ``storage_quota_cache_s`` seconds
(30) per user, so a burst of requests walks the folders once; the quota is therefore soft by at
most what one user can write in that time, which their job cap (``max_jobs_per_user``) bounds
as well.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from fastapi import HTTPException, status
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from imageforge.api.core.config import Settings
from imageforge.api.models.character import Character
from imageforge.api.models.generation import Generation
from imageforge.api.services.characters import character_dir
from imageforge.traces import layout

__all__ = ["check_storage_quota", "forget_usage", "user_storage_bytes"]

_cache: dict[tuple[str, int], tuple[float, int]] = {}
_lock = threading.Lock()


def _folder_bytes(folder: Path, seen: set[tuple[int, int]]) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            try:
                stat = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue  # deleted while we walked
            key = (stat.st_dev, stat.st_ino)
            if key not in seen:
                seen.add(key)
                total += stat.st_size
    return total


def _user_folders(engine: Engine, settings: Settings, user_id: int) -> Iterable[Path]:
    with Session(engine) as session:
        generation_ids = list(session.exec(select(Generation.id).where(Generation.user_id == user_id)))
        character_ids = list(session.exec(select(Character.id).where(Character.user_id == user_id)))
    for generation_id in generation_ids:
        yield layout.generation_dir(settings.trace_root, generation_id)
        yield settings.upload_dir / generation_id
    for character_id in character_ids:
        yield character_dir(settings.data_dir, character_id)


def user_storage_bytes(engine: Engine, settings: Settings, user_id: int) -> int:
    """Bytes the user keeps on disk now (measured, not cached)."""
    seen: set[tuple[int, int]] = set()
    return sum(_folder_bytes(folder, seen) for folder in _user_folders(engine, settings, user_id))


def _cached_usage(engine: Engine, settings: Settings, user_id: int) -> int:
    key = (str(settings.trace_root), user_id)
    now = time.monotonic()
    with _lock:
        entry = _cache.get(key)
    if entry is not None and now - entry[0] < settings.storage_quota_cache_s:
        return entry[1]
    used = user_storage_bytes(engine, settings, user_id)
    with _lock:
        _cache[key] = (now, used)
    return used


def forget_usage(settings: Settings, user_id: int) -> None:
    """Drop the cached figure (after the user deleted something, say)."""
    with _lock:
        _cache.pop((str(settings.trace_root), user_id), None)


def _size(count: int) -> str:
    return f"{count / 1024**3:.2f} GiB" if count >= 1024**3 else f"{count / 1024**2:.1f} MiB"


def check_storage_quota(engine: Engine, settings: Settings, user_id: int) -> None:
    """A 413 when the user's stored bytes have reached the quota; blocking (call in a thread)."""
    quota = settings.user_storage_quota_bytes
    if quota <= 0:
        return
    used = _cached_usage(engine, settings, user_id)
    if used >= quota:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            detail=(
                f"Your storage quota is used up: your traces, uploads and characters take {_size(used)} "
                f"of the {_size(quota)} each user may keep. Delete characters or gallery images you no longer "
                "need, or wait until retention removes old traces, then try again."
            ),
        )
