"""Access tokens for registered users (``imageforge users create`` registers them)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.security import OAuth2PasswordRequestForm

from imageforge.api.core.security import create_access_token
from imageforge.api.crud import user as crud
from imageforge.api.deps import SessionDep, SettingsDep
from imageforge.api.models.user import Token

router = APIRouter(prefix="/api", tags=["login"])


@router.post("/login/access-token", response_model=Token)
def login_access_token(
    session: SessionDep, settings: SettingsDep, form: Annotated[OAuth2PasswordRequestForm, Depends()]
) -> Token:
    """OAuth2 password flow: ``username`` is the e-mail address."""
    user = crud.authenticate(session=session, email=form.username, password=form.password)
    if user is None:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "Incorrect email or password.")
    if not user.is_active:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "Inactive user.")
    return Token(access_token=create_access_token(user.id, settings))  # type: ignore[arg-type]
