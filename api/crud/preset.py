"""Presets: saving a generation's settings under a name, and applying them to a request.

Applying is a merge, not a replacement: the preset's settings are the base and whatever the
request states explicitly wins (``backends`` merges field by field), and the result is
validated again as ``GenerationOptions``. Usage is counted only for accepted requests, by
the submission, in the same unit of work that stores the generation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from imageforge.api.models import GenerationCreate, GenerationOptions, utcnow
from imageforge.api.models_presets import Preset, PresetCreate, PresetPublic, PresetUpdate, preset_key

__all__ = [
    "DuplicatePresetError",
    "PresetNotFoundError",
    "apply_preset",
    "create_preset",
    "delete_preset",
    "generation_options",
    "get_preset",
    "get_preset_by_name",
    "list_presets",
    "merge_settings",
    "preset_public",
    "record_use",
    "settings_from_generation",
    "update_preset",
]


class PresetNotFoundError(LookupError):
    """No preset of that name for this user."""


class DuplicatePresetError(ValueError):
    """The user already has a preset of that name (names ignore case)."""


def merge_settings(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` on top of ``base``; nested objects (``backends``) merge key by key."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_settings(merged[key], value)
        else:
            merged[key] = value
    return merged


def generation_options(options: GenerationOptions) -> dict[str, Any]:
    """The fields a request (or a preset) stated explicitly, as JSON."""
    return options.model_dump(mode="json", exclude_unset=True)


def preset_public(preset: Preset) -> PresetPublic:
    return PresetPublic.model_validate(preset, from_attributes=True)


def settings_from_generation(request: dict[str, Any]) -> dict[str, Any]:
    """A stored generation's settings as preset settings: its run settings, and the backend
    names a request may choose (``llm``, ``generator``; ``scorers`` when it is a mode)."""
    options: dict[str, Any] = dict(request.get("settings") or {})
    backends = request.get("backends") or {}
    choice: dict[str, Any] = {
        name: (backends[name] or {}).get("backend") for name in ("llm", "generator") if backends.get(name)
    }
    choice = {name: value for name, value in choice.items() if value}
    scorers = (backends.get("scoring") or {}).get("scorers")
    if isinstance(scorers, list | tuple) and list(scorers) in (["auto"], ["offline"]):
        choice["scorers"] = list(scorers)
    if choice:
        options["backends"] = choice
    # Validate (and drop what no request could set) through the request model itself.
    known = set(GenerationOptions.model_fields)
    return generation_options(GenerationOptions.model_validate({k: v for k, v in options.items() if k in known}))


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
        preset.settings = generation_options(update.settings)
    preset.updated_at = utcnow()
    return _commit(session, preset)


def delete_preset(*, session: Session, preset: Preset) -> None:
    session.delete(preset)
    session.commit()


def apply_preset(*, session: Session, user_id: int, create: GenerationCreate) -> tuple[GenerationCreate, int | None]:
    """``create`` with its named preset's settings as the base, and the preset's id (None when
    the request names no preset). Raises ``PresetNotFoundError``; a merge that no longer
    validates (a preset saved before a range changed) raises ``ValueError`` naming it."""
    if create.preset is None:
        return create, None
    preset = get_preset_by_name(session=session, name=create.preset, user_id=user_id)
    if preset is None:
        raise PresetNotFoundError(f"no preset named {create.preset!r} for this user")
    merged = merge_settings(preset.settings, generation_options(create.settings))
    try:
        options = GenerationOptions.model_validate(merged)
    except ValidationError as exc:
        raise ValueError(f"preset {preset.name!r} combined with the request's settings is invalid: {exc}") from exc
    return create.model_copy(update={"settings": options}), preset.id


def record_use(*, session: Session, preset_id: int) -> None:
    """One more accepted request used the preset (an atomic increment, safe under concurrency)."""
    session.execute(
        update(Preset)
        .where(col(Preset.id) == preset_id)
        .values(usage_count=Preset.usage_count + 1, last_used_at=utcnow())
    )
    session.commit()
