"""Presets meet generations: a request's named preset applied to it, and a stored generation's
settings saved as a preset.

Applying is a merge, not a replacement: the preset's settings are the base and whatever the
request states explicitly wins (``backends`` merges field by field), and the result is
validated again as ``GenerationOptions``. Usage is counted only for accepted requests, by
the submission, in the same unit of work that stores the generation.
"""

from __future__ import annotations

from typing import Any, get_args

from pydantic import ValidationError
from sqlmodel import Session

from imageforge.agents.settings import LLMBackend
from imageforge.api.crud import preset as crud
from imageforge.api.models.generation import GenerationCreate, GenerationOptions
from imageforge.tools.settings import GeneratorBackend

__all__ = [
    "PresetNotFoundError",
    "apply_preset",
    "generation_options",
    "merge_settings",
    "settings_from_generation",
]

#: The backend names a request may choose (a deployment may name more: a generator factory's import path).
_CHOOSABLE = {"llm": frozenset(get_args(LLMBackend)), "generator": frozenset(get_args(GeneratorBackend))}


class PresetNotFoundError(LookupError):
    """No preset of that name for this user."""


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


def settings_from_generation(request: dict[str, Any]) -> dict[str, Any]:
    """A stored generation's settings as preset settings: its run settings, and the backend
    names a request may choose (``llm``, ``generator``; ``scorers`` when it is a mode)."""
    options: dict[str, Any] = dict(request.get("settings") or {})
    backends = request.get("backends") or {}
    choice: dict[str, Any] = {
        name: (backends[name] or {}).get("backend") for name in ("llm", "generator") if backends.get(name)
    }
    choice = {name: value for name, value in choice.items() if value in _CHOOSABLE[name]}
    scorers = (backends.get("scoring") or {}).get("scorers")
    if isinstance(scorers, list | tuple) and list(scorers) in (["auto"], ["offline"]):
        choice["scorers"] = list(scorers)
    if choice:
        options["backends"] = choice
    # Validate (and drop what no request could set) through the request model itself.
    known = set(GenerationOptions.model_fields)
    return generation_options(GenerationOptions.model_validate({k: v for k, v in options.items() if k in known}))


def apply_preset(*, session: Session, user_id: int, create: GenerationCreate) -> tuple[GenerationCreate, int | None]:
    """``create`` with its named preset's settings as the base, and the preset's id (None when
    the request names no preset). Raises ``PresetNotFoundError``; a merge that no longer
    validates (a preset saved before a range changed) raises ``ValueError`` naming it."""
    if create.preset is None:
        return create, None
    preset = crud.get_preset_by_name(session=session, name=create.preset, user_id=user_id)
    if preset is None:
        raise PresetNotFoundError(f"no preset named {create.preset!r} for this user")
    merged = merge_settings(preset.settings, generation_options(create.settings))
    try:
        options = GenerationOptions.model_validate(merged)
    except ValidationError as exc:
        raise ValueError(f"preset {preset.name!r} combined with the request's settings is invalid: {exc}") from exc
    return create.model_copy(update={"settings": options}), preset.id
