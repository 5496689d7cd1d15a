"""Users: the accounts that may call the API, and the token a login returns."""

from __future__ import annotations

import re
import uuid
from datetime import datetime

from pydantic import field_validator
from sqlmodel import Field, SQLModel

from imageforge.api.models import utcnow

__all__ = ["Token", "User", "UserBase", "UserCacheRegistration", "UserCreate", "UserPublic", "new_public_id"]

_EMAIL_PATTERN = r"^[^@\s]{1,64}@[^@\s]{1,190}$"


def new_public_id() -> str:
    """A random id (UUID4, 122 random bits) that names the user in tokens. Unlike the integer
    key, which a database may hand out again after a delete or a reset, it is never reused."""
    return uuid.uuid4().hex


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
    is_superuser: bool = False


class User(UserBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    public_id: str = Field(default_factory=new_public_id, unique=True, index=True, max_length=32)
    hashed_password: str
    is_superuser: bool = Field(default=False, description="May see deployment details (/health's backends, paths).")
    token_version: int = Field(
        default=0,
        description="Part of every token; raised on deactivation or a password change, which revokes older tokens.",
    )
    created_at: datetime = Field(default_factory=utcnow)


class UserCacheRegistration(SQLModel, table=True):
    """Written by distributed API processes that keep users in memory (one row, or none): the
    ``imageforge users`` commands, which change users from another process, read it to know
    that they must tell those processes, and through which broker."""

    __tablename__ = "user_cache_registration"

    name: str = Field(default="users", primary_key=True, max_length=32)
    token: str = Field(
        default_factory=new_public_id,
        max_length=32,
        description="Also set on the broker by every listening API process: a command that finds it "
        "there knows it publishes where they listen.",
    )
    broker: str = Field(max_length=512, description="The broker's URL, password masked (for messages).")
    registered_at: datetime = Field(default_factory=utcnow)


class UserPublic(UserBase):
    id: str = Field(description="The user's public id (the integer key stays inside the database).")
    is_superuser: bool
    created_at: datetime


class Token(SQLModel):
    access_token: str
    token_type: str = "bearer"
