"""A character's image files: where they live, stored and removed together with their rows,
and the character's images as reference candidates of a run (seed 003's ranking input).

The files live under ``<data_dir>/characters/<character id>/`` (``references/`` and
``gallery/``), named by row id. Rows are written through ``api.crud.character``; a file is
written before its row commits and removed when the commit fails, and removed only after a
deleting commit, so a failure never leaves a row without its file.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

from PIL import Image
from sqlmodel import Session

from imageforge.api.crud import character as crud
from imageforge.api.models.character import Character, CharacterReference, GalleryImage
from imageforge.tools.schemas import ReferenceImage
from imageforge.tools.storage import atomic_copy, save_png

__all__ = [
    "GALLERY_CANDIDATES",
    "CharacterNotFoundError",
    "add_gallery_image",
    "add_reference",
    "character_candidates",
    "character_dir",
    "delete_character",
    "delete_gallery_image",
    "delete_reference",
    "gallery_path",
    "reference_candidates",
    "reference_path",
    "resolve_character_references",
]

logger = logging.getLogger(__name__)

#: Newest gallery images that join the reference candidates (seed 003's "generated", +5).
GALLERY_CANDIDATES = 20


class CharacterNotFoundError(LookupError):
    """Character ids the caller does not own (or that do not exist), in request order."""

    def __init__(self, missing: list[str]) -> None:
        super().__init__(f"unknown character id(s): {', '.join(missing)}")
        self.missing = missing


# Paths ------------------------------------------------------------------------------------
def character_dir(data_dir: Path, character_id: str) -> Path:
    return data_dir / "characters" / character_id


def reference_path(data_dir: Path, reference: CharacterReference) -> Path:
    return character_dir(data_dir, reference.character_id) / "references" / reference.filename


def gallery_path(data_dir: Path, image: GalleryImage) -> Path:
    return character_dir(data_dir, image.character_id) / "gallery" / f"{image.id}.png"


# Files with their rows ----------------------------------------------------------------------
def add_reference(
    *,
    session: Session,
    character: Character,
    image: Image.Image,
    kind: str,
    angle: str | None,
    shot_type: str,
    keywords: list[str],
    data_dir: Path,
) -> CharacterReference:
    """Store a validated image as a reference. A new master replaces the old one (row and file)."""
    reference_id = crud.new_id()
    reference = CharacterReference(
        id=reference_id,
        character_id=character.id,
        kind=kind,
        angle=angle,
        shot_type=shot_type,
        keywords=keywords,
        filename=f"{reference_id}.png",
        width=image.width,
        height=image.height,
    )
    path = save_png(image, reference_path(data_dir, reference))
    try:
        replaced = crud.add_reference(session=session, character=character, reference=reference)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    for old in replaced:
        reference_path(data_dir, old).unlink(missing_ok=True)
    return reference


def add_gallery_image(
    *, session: Session, character: Character, image: GalleryImage, source: str | Path, data_dir: Path
) -> GalleryImage:
    """Copy ``source`` (a winning image in a trace) into the character's gallery folder and store
    its row; the copy is removed when the commit fails. The gallery keeps its own copy, so
    deleting the trace never breaks it."""
    copied = atomic_copy(source, gallery_path(data_dir, image))
    try:
        return crud.add_gallery_image(session=session, character=character, image=image)
    except BaseException:
        copied.unlink(missing_ok=True)
        raise


def delete_character(*, session: Session, character: Character, data_dir: Path) -> None:
    """The rows first (one commit), then the files: a failed commit leaves everything."""
    crud.delete_character(session=session, character=character)
    shutil.rmtree(character_dir(data_dir, character.id), ignore_errors=True)


def delete_reference(*, session: Session, reference: CharacterReference, data_dir: Path) -> None:
    crud.delete_reference(session=session, reference=reference)
    reference_path(data_dir, reference).unlink(missing_ok=True)


def delete_gallery_image(*, session: Session, image: GalleryImage, data_dir: Path) -> None:
    crud.delete_gallery_image(session=session, image=image)
    gallery_path(data_dir, image).unlink(missing_ok=True)


# Reference candidates -----------------------------------------------------------------------
def reference_candidates(
    references: Sequence[CharacterReference], gallery: Sequence[GalleryImage], data_dir: Path
) -> list[ReferenceImage]:
    """The character's images as seed-003 candidates: master, core turnarounds, gallery.

    Files that went missing from disk are left out rather than failing the run later.
    """
    candidates: list[ReferenceImage] = []
    for reference in references:
        path = reference_path(data_dir, reference)
        if not path.is_file():
            logger.warning(
                "reference %s of character %s is missing on disk",
                reference.id,
                reference.character_id,
            )
            continue
        candidates.append(
            ReferenceImage(
                id=reference.id,
                kind="master" if reference.kind == "master" else "core",
                path=str(path.resolve()),
                shot_type=reference.shot_type,
                camera_angle=reference.angle or "",
                keywords=list(reference.keywords),
            )
        )
    for image in gallery:
        path = gallery_path(data_dir, image)
        if not path.is_file():
            continue
        candidates.append(
            ReferenceImage(
                id=image.id,
                kind="generated",
                path=str(path.resolve()),
                quality_score=image.quality_score,
                consistency_score=image.consistency_score,
                shot_type=image.shot_type,
                camera_angle=image.camera_angle,
                keywords=list(image.keywords),
            )
        )
    return candidates


def character_candidates(*, session: Session, character_id: str, data_dir: Path) -> list[ReferenceImage]:
    """One character's candidates: its references and its newest gallery images."""
    return reference_candidates(
        crud.list_references(session=session, character_id=character_id),
        crud.list_gallery(session=session, character_id=character_id, limit=GALLERY_CANDIDATES),
        data_dir,
    )


def resolve_character_references(
    *, session: Session, user_id: int, character_ids: Sequence[str], data_dir: Path
) -> dict[str, list[ReferenceImage]]:
    """Character id -> its candidates, for ``StoryboardRequest.character_references``.

    Raises ``CharacterNotFoundError`` naming every id the caller does not own.
    """
    wanted = list(dict.fromkeys(character_ids))
    missing = [cid for cid in wanted if crud.get_character(session=session, character_id=cid, user_id=user_id) is None]
    if missing:
        raise CharacterNotFoundError(missing)
    return {cid: character_candidates(session=session, character_id=cid, data_dir=data_dir) for cid in wanted}
