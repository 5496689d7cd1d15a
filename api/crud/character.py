"""Characters, their reference images and their gallery: data access only.

Every function takes the session as a keyword argument and commits its own unit of work.
The image files beside these rows (where they live, writing and removing them together with
the rows) are ``api.services.characters``'.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from imageforge.api.models import utcnow
from imageforge.api.models.character import (
    Character,
    CharacterCreate,
    CharacterReference,
    CharacterUpdate,
    GalleryImage,
)

__all__ = [
    "add_gallery_image",
    "add_reference",
    "count_gallery",
    "create_character",
    "delete_character",
    "delete_gallery_image",
    "delete_reference",
    "get_character",
    "get_gallery_image",
    "get_reference",
    "list_characters",
    "list_gallery",
    "list_references",
    "new_id",
    "references_of",
    "update_character",
]


def new_id() -> str:
    """16 hex digits: short enough for generation ids, random enough not to be guessed."""
    return uuid.uuid4().hex[:16]


# Characters ---------------------------------------------------------------------------------
def create_character(*, session: Session, user_id: int, create: CharacterCreate) -> Character:
    character = Character(
        id=new_id(),
        user_id=user_id,
        name=create.name,
        description=create.description,
        tags=create.tags,
    )
    session.add(character)
    session.commit()
    session.refresh(character)
    return character


def get_character(*, session: Session, character_id: str, user_id: int) -> Character | None:
    """The character if it exists and belongs to ``user_id``."""
    character = session.get(Character, character_id)
    if character is None or character.user_id != user_id:
        return None
    return character


def list_characters(*, session: Session, user_id: int, skip: int, limit: int) -> tuple[Sequence[Character], int]:
    query = (
        select(Character)
        .where(Character.user_id == user_id)
        .order_by(col(Character.created_at).desc(), col(Character.id))
        .offset(skip)
        .limit(limit)
    )
    count = session.exec(select(func.count()).select_from(Character).where(Character.user_id == user_id)).one()
    return session.exec(query).all(), int(count)


def update_character(*, session: Session, character: Character, update: CharacterUpdate) -> Character:
    for name, value in update.model_dump(exclude_unset=True).items():
        if value is not None:
            setattr(character, name, value)
    character.updated_at = utcnow()
    session.add(character)
    session.commit()
    session.refresh(character)
    return character


def delete_character(*, session: Session, character: Character) -> None:
    """The character's rows, with its references and gallery, in one commit."""
    session.execute(delete(CharacterReference).where(col(CharacterReference.character_id) == character.id))
    session.execute(delete(GalleryImage).where(col(GalleryImage.character_id) == character.id))
    session.delete(character)
    session.commit()


# References --------------------------------------------------------------------------------
def list_references(*, session: Session, character_id: str) -> list[CharacterReference]:
    """Master first, then core references in upload order."""
    rows = session.exec(
        select(CharacterReference)
        .where(CharacterReference.character_id == character_id)
        .order_by(col(CharacterReference.created_at), col(CharacterReference.id))
    ).all()
    return sorted(rows, key=lambda r: r.kind != "master")


def references_of(*, session: Session, character_ids: Sequence[str]) -> dict[str, list[CharacterReference]]:
    """Character id -> its references in upload order, for a page of characters at once."""
    found: dict[str, list[CharacterReference]] = {cid: [] for cid in character_ids}
    if not character_ids:
        return found
    for reference in session.exec(
        select(CharacterReference)
        .where(col(CharacterReference.character_id).in_(list(character_ids)))
        .order_by(col(CharacterReference.created_at), col(CharacterReference.id))
    ).all():
        found[reference.character_id].append(reference)
    return found


def get_reference(*, session: Session, character_id: str, reference_id: str) -> CharacterReference | None:
    reference = session.get(CharacterReference, reference_id)
    if reference is None or reference.character_id != character_id:
        return None
    return reference


def add_reference(*, session: Session, character: Character, reference: CharacterReference) -> list[CharacterReference]:
    """Store ``reference``; a new master replaces the old one. Returns the replaced rows (their
    files are the caller's to remove). Rolls back and re-raises when the commit fails."""
    replaced: list[CharacterReference] = []
    try:
        if reference.kind == "master":
            replaced = list(
                session.exec(
                    select(CharacterReference).where(
                        CharacterReference.character_id == character.id,
                        CharacterReference.kind == "master",
                    )
                ).all()
            )
            for old in replaced:
                session.delete(old)
        character.updated_at = utcnow()
        session.add(character)
        session.add(reference)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    session.refresh(reference)
    return replaced


def delete_reference(*, session: Session, reference: CharacterReference) -> None:
    session.delete(reference)
    session.commit()


# Gallery -----------------------------------------------------------------------------------
def list_gallery(*, session: Session, character_id: str, limit: int | None = None) -> list[GalleryImage]:
    """Newest first."""
    query = (
        select(GalleryImage)
        .where(GalleryImage.character_id == character_id)
        .order_by(col(GalleryImage.created_at).desc(), col(GalleryImage.id))
    )
    if limit is not None:
        query = query.limit(limit)
    return list(session.exec(query).all())


def count_gallery(*, session: Session, character_ids: Sequence[str]) -> dict[str, int]:
    """Character id -> how many gallery images it has."""
    counts: dict[str, int] = dict.fromkeys(character_ids, 0)
    if not character_ids:
        return counts
    rows = session.exec(
        select(GalleryImage.character_id, func.count())
        .where(col(GalleryImage.character_id).in_(list(character_ids)))
        .group_by(GalleryImage.character_id)
    ).all()
    counts.update({character_id: int(count) for character_id, count in rows})
    return counts


def get_gallery_image(*, session: Session, character_id: str, image_id: str) -> GalleryImage | None:
    image = session.get(GalleryImage, image_id)
    if image is None or image.character_id != character_id:
        return None
    return image


def add_gallery_image(*, session: Session, character: Character, image: GalleryImage) -> GalleryImage:
    """Store ``image`` in the character's gallery. Rolls back and re-raises when the commit fails."""
    try:
        character.updated_at = utcnow()
        session.add(character)
        session.add(image)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    session.refresh(image)
    return image


def delete_gallery_image(*, session: Session, image: GalleryImage) -> None:
    session.delete(image)
    session.commit()
