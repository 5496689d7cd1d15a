"""Users: the accounts that may call the API, and the token a login returns."""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import field_validator
from sqlmodel import Field, SQLModel

from imageforge.api.models import utcnow

__all__ = ["Token", "User", "UserBase", "UserCreate", "UserPublic"]

_EMAIL_PATTERN = r"^[^@\s]{1,64}@[^@\s]{1,190}$"


class UserBase(SQLModel):
    email: str = Field(unique=True, index=True, max_length=255)
    is_active: bool = True

    @field_validator("email")
    @classmethod
    def _email_shape(cls, value: str) -> str:
        cleaned = value.strip().lower()
        if not re.fullmatch(_EMAIL_PATTERN, cleaned):
            raise ValueError(f"`email` must look like name@domain, got {value!r}.")
        return cleaned


class UserCreate(UserBase):
    password: str = Field(min_length=8, max_length=128)


class User(UserBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    hashed_password: str
    created_at: datetime = Field(default_factory=utcnow)


class UserPublic(UserBase):
    id: int
    created_at: datetime


class Token(SQLModel):
    access_token: str
    token_type: str = "bearer"
