"""Presets (seed 001): a user's named settings; apply one with ``"preset": "<name>"`` in any
generate request."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import ValidationError
from sqlmodel import Session

from imageforge.api.crud import generation as generation_crud
from imageforge.api.crud import preset as crud
from imageforge.api.deps import CurrentUser, SessionDep
from imageforge.api.models.operations import Message
from imageforge.api.models.preset import Preset, PresetCreate, PresetPublic, PresetsPublic, PresetUpdate
from imageforge.api.routes import Responses
from imageforge.api.services import presets

__all__ = ["router"]

router = APIRouter(prefix="/api/presets", tags=["presets"])

PresetId = Annotated[int, Path(ge=1, le=2**31 - 1)]
_NOT_FOUND: Responses = {404: {"description": "No such preset (or source generation) for this user."}}
_CONFLICT: Responses = {409: {"description": "The user already has a preset of that name (names ignore case)."}}


def _owned(session: Session, preset_id: int, user_id: int) -> Preset:
    preset = crud.get_preset(session=session, preset_id=preset_id, user_id=user_id)
    if preset is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Preset {preset_id} not found.")
    return preset


def _public(preset: Preset) -> PresetPublic:
    return PresetPublic.model_validate(preset, from_attributes=True)


def _conflict(exc: crud.DuplicatePresetError) -> HTTPException:
    return HTTPException(
        status.HTTP_409_CONFLICT,
        [{"loc": ["body", "name"], "msg": str(exc), "type": "duplicate_name"}],
    )


@router.get("", response_model=PresetsPublic)
def list_presets(
    session: SessionDep,
    user: CurrentUser,
    skip: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> PresetsPublic:
    """The caller's presets by name, with how often each was used."""
    rows, count = crud.list_presets(session=session, user_id=user.id, skip=skip, limit=limit)  # type: ignore[arg-type]
    return PresetsPublic(data=[_public(p) for p in rows], count=count)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=PresetPublic,
    responses={**_NOT_FOUND, **_CONFLICT},
)
def create_preset(body: PresetCreate, session: SessionDep, user: CurrentUser) -> PresetPublic:
    """Save ``settings``, or the settings of the generation ``generation_id``, under ``name``."""
    if body.settings is not None:
        settings = presets.generation_options(body.settings)
    else:
        generation = generation_crud.get_generation(
            session=session, generation_id=body.generation_id or "", user_id=user.id
        )
        if generation is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"Generation {body.generation_id!r} not found.")
        try:
            settings = presets.settings_from_generation(generation.request or {})
        except ValidationError as exc:  # a generation stored by an older version with other ranges
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                [
                    {
                        "loc": ["body", "generation_id"],
                        "msg": f"its settings are no longer valid: {exc}",
                        "type": "value_error",
                    }
                ],
            ) from exc
    try:
        preset = crud.create_preset(session=session, user_id=user.id, create=body, settings=settings)  # type: ignore[arg-type]
    except crud.DuplicatePresetError as exc:
        raise _conflict(exc) from exc
    return _public(preset)


@router.get("/{preset_id}", response_model=PresetPublic, responses=_NOT_FOUND)
def get_preset(preset_id: PresetId, session: SessionDep, user: CurrentUser) -> PresetPublic:
    return _public(_owned(session, preset_id, user.id))  # type: ignore[arg-type]


@router.patch("/{preset_id}", response_model=PresetPublic, responses={**_NOT_FOUND, **_CONFLICT})
def update_preset(preset_id: PresetId, body: PresetUpdate, session: SessionDep, user: CurrentUser) -> PresetPublic:
    """Rename, re-describe, or replace the settings; fields not sent stay as they are."""
    preset = _owned(session, preset_id, user.id)  # type: ignore[arg-type]
    try:
        preset = crud.update_preset(session=session, preset=preset, update=body)
    except crud.DuplicatePresetError as exc:
        raise _conflict(exc) from exc
    return _public(preset)


@router.delete("/{preset_id}", response_model=Message, responses=_NOT_FOUND)
def delete_preset(preset_id: PresetId, session: SessionDep, user: CurrentUser) -> Message:
    preset = _owned(session, preset_id, user.id)  # type: ignore[arg-type]
    crud.delete_preset(session=session, preset=preset)
    return Message(message=f"Preset {preset.name!r} deleted.")
