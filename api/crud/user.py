"""Users: data access only. Every function takes the session as a keyword argument and
commits its own unit of work."""

from __future__ import annotations

from sqlmodel import Session, select

from imageforge.api.core.security import hash_password, verify_and_update
from imageforge.api.models.user import User, UserCreate

__all__ = ["DEV_USER_EMAIL", "authenticate", "create_user", "get_or_create_dev_user", "get_user", "get_user_by_email"]

DEV_USER_EMAIL = "dev@localhost"


def create_user(*, session: Session, user_create: UserCreate) -> User:
    if get_user_by_email(session=session, email=user_create.email) is not None:
        raise ValueError(f"`email` {user_create.email!r} is already registered.")
    user = User(
        email=user_create.email,
        is_active=user_create.is_active,
        hashed_password=hash_password(user_create.password),
    )
    session.add(user)
    session.commit()
    session.refresh(user)
    return user


def get_user(*, session: Session, user_id: int) -> User | None:
    return session.get(User, user_id)


def get_user_by_email(*, session: Session, email: str) -> User | None:
    """E-mail addresses are stored lower-case, so the lookup ignores case."""
    return session.exec(select(User).where(User.email == email.strip().lower())).first()


def authenticate(*, session: Session, email: str, password: str) -> User | None:
    """The user whose password this is, or None. A stored hash in an older format (or with
    weaker parameters) is replaced by a current one on the way."""
    user = get_user_by_email(session=session, email=email)
    if user is None:
        return None
    valid, new_hash = verify_and_update(password, user.hashed_password)
    if not valid:
        return None
    if new_hash is not None:
        user.hashed_password = new_hash
        session.add(user)
        session.commit()
        session.refresh(user)
    return user


def get_or_create_dev_user(*, session: Session) -> User:
    """The single user of dev mode; it has no usable password."""
    user = get_user_by_email(session=session, email=DEV_USER_EMAIL)
    if user is not None:
        return user
    user = User(email=DEV_USER_EMAIL, hashed_password="!")
    session.add(user)
    session.commit()
    session.refresh(user)
    return user
