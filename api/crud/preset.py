"""Presets: data access only. Every function takes the session as a keyword argument and
commits its own unit of work; names are unique per user without regard to case."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from imageforge.api.models import utcnow
from imageforge.api.models.preset import Preset, PresetCreate, PresetUpdate, preset_key

__all__ = [
    "DuplicatePresetError",
    "create_preset",
    "delete_preset",
    "get_preset",
    "get_preset_by_name",
    "list_presets",
    "record_use",
    "update_preset",
]


class DuplicatePresetError(ValueError):
    """The user already has a preset of that name (names ignore case)."""


def list_presets(*, session: Session, user_id: int, skip: int, limit: int) -> tuple[Sequence[Preset], int]:
    query = select(Preset).where(Preset.user_id == user_id).order_by(col(Preset.name_key), col(Preset.id))
    count = session.exec(select(func.count()).select_from(Preset).where(Preset.user_id == user_id)).one()
    return session.exec(query.offset(skip).limit(limit)).all(), int(count)


def get_preset(*, session: Session, preset_id: int, user_id: int) -> Preset | None:
    preset = session.get(Preset, preset_id)
    if preset is None or preset.user_id != user_id:
        return None
    return preset


def get_preset_by_name(*, session: Session, name: str, user_id: int) -> Preset | None:
    return session.exec(select(Preset).where(Preset.user_id == user_id, Preset.name_key == preset_key(name))).first()


def _commit(session: Session, preset: Preset) -> Preset:
    clash = select(Preset.id).where(Preset.user_id == preset.user_id, Preset.name_key == preset.name_key)
    if preset.id is not None:
        clash = clash.where(Preset.id != preset.id)
    with session.no_autoflush:  # check before the changed row is flushed into the constraint
        taken = session.exec(clash).first() is not None
    if taken:
        session.rollback()
        raise DuplicatePresetError(f"a preset named {preset.name!r} already exists")
    session.add(preset)
    try:
        session.commit()
    except IntegrityError as exc:  # a concurrent request took the name between check and commit
        session.rollback()
        raise DuplicatePresetError(f"a preset named {preset.name!r} already exists") from exc
    session.refresh(preset)
    return preset


def create_preset(*, session: Session, user_id: int, create: PresetCreate, settings: dict[str, Any]) -> Preset:
    """``settings`` is already resolved (from ``create.settings`` or the source generation)."""
    preset = Preset(
        user_id=user_id,
        name=create.name,
        name_key=preset_key(create.name),
        description=create.description,
        settings=settings,
        source_generation_id=create.generation_id,
    )
    return _commit(session, preset)


def update_preset(*, session: Session, preset: Preset, update: PresetUpdate) -> Preset:
    if update.name is not None:
        preset.name = update.name
        preset.name_key = preset_key(update.name)
    if update.description is not None:
        preset.description = update.description
    if update.settings is not None:
        preset.settings = update.settings.model_dump(mode="json", exclude_unset=True)  # only what it states
    preset.updated_at = utcnow()
    return _commit(session, preset)


def delete_preset(*, session: Session, preset: Preset) -> None:
    session.delete(preset)
    session.commit()


def record_use(*, session: Session, preset_id: int) -> None:
    """One more accepted request used the preset (an atomic increment, safe under concurrency)."""
    session.execute(
        update(Preset)
        .where(col(Preset.id) == preset_id)
        .values(usage_count=Preset.usage_count + 1, last_used_at=utcnow())
    )
    session.commit()
