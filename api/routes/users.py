"""The caller's own account (users are created with ``imageforge users create``)."""

from __future__ import annotations

from fastapi import APIRouter

from imageforge.api.deps import CurrentUser
from imageforge.api.models.user import UserPublic

router = APIRouter(prefix="/api/users", tags=["users"])


@router.get("/me", response_model=UserPublic)
def read_user_me(user: CurrentUser) -> UserPublic:
    return UserPublic(
        id=user.public_id,
        email=user.email,
        is_active=user.is_active,
        is_superuser=user.is_superuser,
        created_at=user.created_at,
    )
